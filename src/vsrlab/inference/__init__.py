"""Super-resolving clips and streams, below the models that use it: whole clips
(:mod:`~vsrlab.inference.clip`: validation, test, analysis), streams in chunks
(:mod:`~vsrlab.inference.stream`), video files and frame folders in and out
(:mod:`~vsrlab.inference.video_io`). ``vsrlab-infer`` is :mod:`vsrlab.apps.infer`."""
