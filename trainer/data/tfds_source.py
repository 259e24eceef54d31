"""``tfds:<name>``: an image-classification dataset already prepared by tensorflow-datasets.

``data.source_dir`` is the TFDS data_dir holding it ('' = TFDS's default, ``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``); nothing is downloaded. Needs the ``tf`` extra (TensorFlow and
tensorflow-datasets), which training itself never imports. Splits: ``train`` for training;
``validation``, else ``test``, for evaluation. Images of one fixed shape are resized by the
common resampler after reading; datasets of mixed image sizes are resized in the TFDS pipeline
(tf.image bicubic with antialiasing) so batches can be formed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trainer.data.errors import DataError
from trainer.data.prepared import one_line

BATCH = 1024


def _import_tfds():
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(
            f"tfds:<name> datasets need TensorFlow and tensorflow-datasets ({one_line(e)}); "
            f"install the tf extra: pip install -e '.[tf]'"
        ) from None
    return tf, tfds


class TfdsSource:
    def __init__(self, dataset: str, source_dir: str, which: str, image_size: int):
        self.name = dataset
        tfds_name = dataset.removeprefix("tfds:")
        if source_dir and not Path(source_dir).expanduser().is_dir():
            raise DataError(
                f"data.source_dir={source_dir!r} does not exist; give the TFDS data_dir that "
                f"holds {tfds_name} or '' for TFDS's default"
            )
        self.tf, tfds = _import_tfds()
        self.tfds = tfds
        data_dir = str(Path(source_dir).expanduser()) if source_dir else None
        try:
            builder = tfds.builder(tfds_name, data_dir=data_dir)
        except Exception as e:  # tfds raises several types for unknown names / configs
            # TFDS lists every dataset it knows in the message (8 KB): keep the reason only.
            why = one_line(e).split(" Available datasets:")[0][:300]
            raise DataError(f"{dataset}: TFDS cannot open it ({why})") from None
        where = data_dir or "TFDS's default data_dir"
        if not builder.is_prepared():
            raise DataError(
                f"{dataset} is not prepared in {where}; prepare it with tfds "
                f"(tfds build {tfds_name} --data_dir=...) and set data.source_dir to that data_dir"
            )
        splits = builder.info.splits
        if which == "train":
            wanted = ("train",)
        else:
            wanted = ("validation", "test")
        names = [s for s in wanted if s in splits]
        if not names:
            raise DataError(
                f"{dataset} has splits {', '.join(sorted(splits))}; the {which} split needs "
                f"{' or '.join(wanted)}"
            )
        self.split_name = names[0]
        image_key, label_key = self._keys(builder)
        self.image_key, self.label_key = image_key, label_key
        self.num_classes = int(builder.info.features[label_key].num_classes)
        image_feature = builder.info.features[image_key]
        self.image_shape = tuple(image_feature.shape)
        if len(self.image_shape) != 3 or self.image_shape[-1] not in (1, 3):
            raise DataError(
                f"{dataset}: feature {image_key!r} has shape {self.image_shape}; expected "
                f"(height, width, 1 or 3) images"
            )
        dtype = np.dtype(getattr(image_feature, "np_dtype", np.uint8))
        if dtype != np.uint8:
            raise DataError(f"{dataset}: feature {image_key!r} is {dtype}; expected uint8 images")
        self.builder = builder
        self.image_size = image_size
        self.source = f"TFDS {builder.info.full_name}"
        self.source_dir = str(builder.data_dir)
        self.source_split = self.split_name
        self._count = int(splits[self.split_name].num_examples)

    def _keys(self, builder) -> tuple[str, str]:
        features = builder.info.features
        sk = builder.info.supervised_keys
        if isinstance(sk, tuple) and len(sk) == 2 and all(isinstance(k, str) for k in sk):
            image_key, label_key = sk
        else:
            kinds = {k: type(v).__name__ for k, v in features.items()}
            images = [k for k, t in kinds.items() if t == "Image"]
            labels = [k for k, t in kinds.items() if t == "ClassLabel"]
            if not images or not labels:
                raise DataError(
                    f"{self.name}: no (Image, ClassLabel) features; it has "
                    f"{', '.join(f'{k}: {t}' for k, t in kinds.items())}"
                )
            image_key, label_key = images[0], labels[0]
        if type(features[label_key]).__name__ != "ClassLabel":
            raise DataError(f"{self.name}: label feature {label_key!r} is not a ClassLabel")
        return image_key, label_key

    def count(self) -> int | None:
        return self._count

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        tf = self.tf
        ds = self.builder.as_dataset(split=self.split_name, shuffle_files=False)
        ik, lk, size = self.image_key, self.label_key, self.image_size
        if None in self.image_shape[:2]:  # mixed sizes: resize in the pipeline to batch them

            def fix(ex):
                img = tf.image.resize(ex[ik], (size, size), method="bicubic", antialias=True)
                return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8), ex[lk]

        else:

            def fix(ex):
                return ex[ik], ex[lk]

        ds = ds.map(fix).batch(BATCH)
        for images, labels in self.tfds.as_numpy(ds):
            yield np.asarray(images, np.uint8), np.asarray(labels, np.int32)
