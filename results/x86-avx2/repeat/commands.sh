#!/bin/bash
# Four runs of the same command, one after another on an otherwise idle machine (2026-12-03, code 8c06215,
# shipped x86-avx2 records); stdout in runN.txt, --json in runN.json.
for i in 1 2 3 4; do lcnet-tvm bench --iterations 20 --json run$i.json > run$i.txt; done
