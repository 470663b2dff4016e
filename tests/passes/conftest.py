"""Pass tests: every pass run here is checked to take and leave well-formed IR, as TVM's own suite does."""

import pytest
import tvm
from tvm.relax.ir.instrument import WellFormedInstrument


@pytest.fixture(autouse=True)
def well_formed_ir():
    """Check the IR before and after each pass; a pass that breaks it fails the test there."""
    current = tvm.transform.PassContext.current()
    with tvm.transform.PassContext(
        opt_level=current.opt_level,
        required_pass=current.required_pass,
        disabled_pass=current.disabled_pass,
        instruments=[*current.instruments, WellFormedInstrument()],
        config=current.config,
    ):
        yield
