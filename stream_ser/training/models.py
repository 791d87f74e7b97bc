"""The Keras architectures: two CNNs on (108, 22) window features, and a dense
head on the whisper encoder's (1, 768) summary of a window."""

from __future__ import annotations

from ..features import N_FEATURES, N_FRAMES

ARCHS = ("paper", "compact", "head")


def build(arch: str, n_classes: int = 7):
    import keras
    from keras import layers as L

    if arch == "head":
        from ..whisper_states import N_VALUES

        inp = keras.Input((1, N_VALUES), name="features")
        # the encoder has done the listening: a small net on its summary
        x = L.Flatten()(inp)
        x = L.Dropout(0.2)(x)
        x = L.Dense(256, activation="relu")(x)
        x = L.Dropout(0.3)(x)
        out = L.Dense(n_classes, activation="softmax", name="probs")(x)
        return keras.Model(inp, out, name="ser_head")
    inp = keras.Input((N_FRAMES, N_FEATURES), name="features")
    if arch == "paper":
        # The source paper's 1D-CNN over the flattened 2376 values (frame-major order);
        # 7,193,223 parameters at 7 classes.  BatchNorm momentum 0.9 instead of
        # 0.99 so that the moving statistics settle in ~40 steps an epoch.
        bn = dict(momentum=0.9)
        x = L.Reshape((N_FRAMES * N_FEATURES, 1))(inp)
        for filters, kernel, pool, drop in ((512, 5, 5, 0), (512, 5, 5, 0.2), (256, 5, 5, 0), (256, 3, 5, 0.2), (128, 3, 3, 0.2)):
            x = L.Conv1D(filters, kernel, padding="same", activation="relu")(x)
            x = L.BatchNormalization(**bn)(x)
            x = L.MaxPool1D(pool, strides=2, padding="same")(x)
            if drop:
                x = L.Dropout(drop)(x)
        x = L.Flatten()(x)
        x = L.Dense(512, activation="relu")(x)
        x = L.BatchNormalization(**bn)(x)
    elif arch == "compact":
        # A small time-convolutional net: features as 22 channels over 108 frames,
        # global pooling so it cannot memorise where in the window things happen.
        x = L.SpatialDropout1D(0.1)(inp)
        for filters, kernel in ((64, 5), (96, 5), (128, 3), (128, 3)):
            x = L.Conv1D(filters, kernel, padding="same", use_bias=False)(x)
            x = L.BatchNormalization(momentum=0.9)(x)
            x = L.Activation("relu")(x)
            x = L.MaxPool1D(2, padding="same")(x)
            x = L.Dropout(0.15)(x)
        x = L.Concatenate()([L.GlobalAveragePooling1D()(x), L.GlobalMaxPooling1D()(x)])
        x = L.Dropout(0.4)(x)
        x = L.Dense(64, activation="relu")(x)
        x = L.Dropout(0.3)(x)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHS}")
    out = L.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name=f"ser_{arch}")
