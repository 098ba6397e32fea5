"""Super-resolving clips and videos: whole clips (:mod:`~vsrlab.inference.clip`: validation, test,
analysis), streams in chunks (:mod:`~vsrlab.inference.stream`), video files and frame folders in and
out (:mod:`~vsrlab.inference.video_io`) and ``vsrlab-infer``'s library (:mod:`~vsrlab.inference.videos`)."""
