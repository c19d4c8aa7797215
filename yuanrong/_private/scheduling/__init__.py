"""Where work runs: the only yuanrong code that talks to the placement engine (``pins``), resource
groups, the fail-fast feasibility check, and the choice between them for each call (``calls``)."""
