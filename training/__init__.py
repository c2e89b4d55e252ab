"""How a run trains: the command line (`cli`), what a run trains with and its step and epoch (`loop`), the
checkpoint and resume state (`state`), and the GHM statistics callback (`ghm_recorder`). `train.py` drives them."""
