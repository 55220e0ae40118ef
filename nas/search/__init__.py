"""The search stage: rewards, the LSTM controller, the search algorithms behind one ask/tell
interface, and the search loop (in process or as Ray Tune trials).

`python -m nas.search` is the headline command; it runs the whole pipeline (`nas.pipeline`).
"""
