"""The merged HDF5 file's layout, versioned like a tfds dataset.

Version rules: patch = same records; minor = same records plus fields; major = records may
change. Every file stores its schema version, the class order and how it was built.

Layout (N samples, ordered by sample id; S = crop size):
  /rgb            (N, S, S, 3) uint8    one chunk per sample
  /depth          (N, S, S)    uint16   one chunk per sample, the render-depth convention
  /label          (N,) int8     index into the `classes` attribute
  /sample_id, /dataset, /subject, /code, /sex   (N,) fixed-length UTF-8 strings
  /intensity      (N,) int8     -1 where the dataset has none
  /iou            (N,) float32  alignment figure (NaN where the method has none)
  /status         (N,) UTF-8    "ok" or "low-quality": how the sample aligned against its bars
                                (since 1.1.0; a flagged sample is kept, never dropped)
  /flags          (N,) UTF-8    the checks a low-quality sample failed, ';'-separated, e.g.
                                "landmark-offset" (since 1.1.0; empty when ok)
  /alignment      (N,) UTF-8 JSON: the full alignment.csv row of render-depth
  /sources        (N,) UTF-8 JSON: {role: {"path": relative to the dataset root, "sha256": ...}}
Attributes: schema_version, fer3d_bench_version, classes, depth_convention (JSON),
build_parameters (JSON), counts (JSON), fingerprint.
"""

SCHEMA_VERSION = "1.1.0"  # 1.1.0: /status and /flags
TEXT_FIELDS = (
    "sample_id",
    "dataset",
    "subject",
    "code",
    "sex",
    "status",
    "flags",
    "alignment",
    "sources",
)
