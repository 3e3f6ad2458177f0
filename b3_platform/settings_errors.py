"""The error a bad setting raises, for every setting the platform reads from the environment.

`ConfigError` is raised while the definitions load (resources.build_resources, aws.AwsSettings):
B3_PLATFORM_ENV, the index list, and the AWS mode's bucket, region, Glue database and so on. It
lives apart from any one group of settings so that code checking local and AWS settings alike
imports it from one neutral place; the CLI turns it into `error: <message>` and exit code 2.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""
