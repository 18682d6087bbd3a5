#!/usr/bin/env bash
# Idle stop on Vast machines, against the replica (see idle.sh).
exec bash "$(dirname "$0")/idle.sh" vast
