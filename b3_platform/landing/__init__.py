"""The landing area: files dropped next to the lake are imported into raw by a sensor.

A user uploads saved B3 files straight into the landing prefix (e.g.
`aws s3 cp --recursive ~/archive/ s3://bucket/prefix/landing/`) or copies them into
`<data dir>/landing/` locally. `automation.landing_sensor` takes what landed, validates and files
each file exactly like `python -m b3_platform import` (importer.import_body), reports the imported
dates as raw_portfolio materializations (the layers below follow by their automation conditions),
and settles each file: imported or duplicate → removed from landing; rejected → moved to
`landing_rejected/` beside landing with `<name>.reason.txt` next to it, so the user sees why and
can fix it and drop it again.

Both environments stand behind the one resource key `landing` (resources.build_resources), so the
sensor has the same behaviour locally and on AWS:
- base.py: what the sensor sees (`LandingResource`: receive, settle; `LandedFile`) and the rules
  both share (size limit, temp names, the rejected folder's name);
- local.py: `LocalLandingResource`, a folder listed on each tick;
- sqs.py: `SqsLandingResource`, the S3 landing prefix learnt from its ObjectCreated events on SQS.
"""

from b3_platform.landing.base import (
    MAX_BYTES,
    REASON_SUFFIX,
    REJECTED_SUFFIX,
    TEMP_SUFFIXES,
    LandedFile,
    LandingResource,
)
from b3_platform.landing.local import LocalLandingResource
from b3_platform.landing.sqs import QueueError, SqsLandingResource

__all__ = [
    "MAX_BYTES",
    "REASON_SUFFIX",
    "REJECTED_SUFFIX",
    "TEMP_SUFFIXES",
    "LandedFile",
    "LandingResource",
    "LocalLandingResource",
    "QueueError",
    "SqsLandingResource",
]
