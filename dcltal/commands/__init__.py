"""One module a command: ``add_arguments(parser)`` and ``run(args) -> int``.

Modules import heavy libraries (torch) inside ``run`` or in modules that only those commands
load, so that ``dcltal eval`` starts without torch.
"""
