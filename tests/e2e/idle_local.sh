#!/usr/bin/env bash
# Idle stop on local machines (see idle.sh).
exec bash "$(dirname "$0")/idle.sh" local
