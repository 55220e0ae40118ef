"""Audits of the accuracy proxies: how well each ranks architectures, and at what cost.

`fidelity` (against a longer training of sampled architectures, and the zoo's published ImageNet
top-1: `published`), `imagenet` (against Accel-NASBench's measured ImageNet top-1), their reports
(`fidelity_report`, `imagenet_report`), which architectures an audit draws (`population`) and the
rank statistics they report (`ranks`). The command is `python -m nas.proxies audit` /
`imagenet-audit`. A tool above the proxies, which it runs (nas.accuracy, nas.supernet, nas.groundtruth).
"""
