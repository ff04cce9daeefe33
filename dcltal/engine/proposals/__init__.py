"""The built-in proposal generator's side of the engine (``model.kind: proposals``;
docs/proposals.md): its windows and training task, and the decoding of its maps into proposals."""
