"""lcnet_tvm's Relax passes and the one pipeline that composes them (see :mod:`.pipeline`)."""
