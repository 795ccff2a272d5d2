"""SlideScope as a napari plugin (npe2): a slide reader, the demo slide, the SlideScope docks.

The manifest is ``napari.yaml`` beside this file; the contributions are thin and call the
engine (:mod:`slidescope.app`) and its widgets (:mod:`slidescope.app.ui`).
"""
