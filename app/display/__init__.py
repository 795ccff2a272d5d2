"""What the window shows, as Qt-free models: where layers go, tile caches, heatmap layers.

napari keeps its evented models in ``components``/``layers`` apart from ``_qt``; this is
SlideScope's equivalent. The modules here compute layer data, placement (``scale`` and
``translate`` in level-0 pixels) and cached tiles; ``slidescope.app.ui`` only hands them to
napari's layers and Qt widgets. Nothing here imports Qt or napari.
"""
