"""`python -m nas.train`: train one spec with MobileNetV3's recipe, scaled to the data set and batch.

Modules, one concern each: `recipe` (the paper's hyper-parameters and their scaling, torch-free),
`loop` (the training loop one process or one Ray Train worker runs), `checkpoint` (the per-epoch
checkpoint and the settings a resume must share), `ray_train` (data-parallel workers on Ray Train),
`run` (from checked inputs to the run directory's files). See docs/training.md.
"""
