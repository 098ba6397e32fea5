"""Console entry points: thin shells over the library (each ``main()`` calls :func:`vsrlab.app.init`)."""
