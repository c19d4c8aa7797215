"""The programming model on Ray: stateless functions, stateful instances (the only place actors
are created for users), instance groups, and objects (refs, put/get/wait/cancel)."""
