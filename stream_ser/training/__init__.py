"""Training, augmentation and evaluation of the emotion model.

Serving code never imports this package; this package imports the serving
windower (:mod:`stream_ser.windows`) and features (:mod:`stream_ser.features`).
"""
