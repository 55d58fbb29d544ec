#!/bin/sh
echo "benchmark not written yet"
