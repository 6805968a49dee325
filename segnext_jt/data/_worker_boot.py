"""Main script of loader worker processes started with ``light_workers=True``.

A spawned process normally re-runs the parent's main script (as
``__mp_main__``) before it unpickles its task; for a training script that
means importing Jittor and the models in every data worker. The worker pool
(:mod:`.worker_pool`) points the children at this empty script instead, so a
worker imports only what its task needs (``segnext_jt.data``: NumPy + Pillow).
"""
