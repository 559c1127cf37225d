"""IVR flows as data: the flow format, its loader and validator, the sans-IO flow engine,
prompt catalogues and the example flows."""
