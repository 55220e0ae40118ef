"""`python -m nas.proxies` (the accuracy stage's command); the code lives in `nas.accuracy`."""
