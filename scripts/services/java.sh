#!/usr/bin/env bash
# A JVM for Spark in local mode (tests/lakehouse/test_spark.py: `runner spark`, pyspark's
# own jars). Debian 12's Java 17, the release pyspark 4 supports.
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
