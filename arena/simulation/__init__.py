"""The petri dish itself: the board of one arena and the deterministic step from one tick to the
next. Pure: numpy and the standard library only, no framework, no I/O, no clock
(docs/simulation.md).
"""
