"""Running a compiled artifact: :class:`~.compiled_model.CompiledModel`, its typed metadata, the VM call instrument."""
