"""The apps, side by side: ``train``, ``evaluate``, ``infer``, ``analyze``, ``report``, ``export``. Each
uses the engine (:mod:`vsrlab.engine`) and the library, never another app; the console entry points
(:mod:`vsrlab.cli`) are thin shells over them."""
