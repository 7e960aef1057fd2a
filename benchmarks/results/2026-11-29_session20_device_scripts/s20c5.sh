#!/usr/bin/env bash
# session 20 call 5: the release wheel of 754fd1f with the tests of 5f..: the tests that
# failed or ran out of time in call 4; ncu stall sampling, ours vs cuDNN at (4,16,2048,128)
set -u
R=$PWD; L=$OUT/c5; mkdir -p $L
pack() { tar czf $OUT/logs_c5.tgz -C $OUT c5; }
t0=$SECONDS
whl=$(ls $R/.devrun/rel21/*.whl)
site=$(mktemp -d); python3 -m pip install -q --no-deps --no-compile --target "$site" "$whl"
export PYTHONPATH=$site
( timeout 200 python3 -m pytest -q -rs tests/test_bwd.py -k "gqa_split" > $L/bwd_split.txt 2>&1; echo "bwd_split rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$!"
for f in test_autograd_api test_bwd_configs test_api; do
  ( timeout 230 python3 -m pytest -q -rs tests/$f.py > $L/$f.txt 2>&1; echo "$f rc=$? $((SECONDS-t0))s" >> $L/rc.txt ) & p="$p $!"
done
wait $p; pack
( timeout 150 ncu --clock-control none -k "regex:fwd_kernel|sdpa.*fprop" --section SpeedOfLight --section WarpStateStats --section SourceCounters -o $L/short python3 benchmarks/ncu_cases.py --shapes "4,16,2048,128" --cudnn > $L/ncu_run.txt 2>&1; echo "ncu rc=$? $((SECONDS-t0))s" >> $L/rc.txt )
ncu -i $L/short.ncu-rep --page details --print-details all > $L/ncu_details.txt 2>&1 || ncu -i $L/short.ncu-rep --page details > $L/ncu_details.txt 2>&1
ncu -i $L/short.ncu-rep --page source --csv --print-source sass > $L/ncu_source.csv 2>&1; gzip -f $L/ncu_source.csv
ncu -i $L/short.ncu-rep --page raw --csv > $L/ncu_raw.csv 2>&1; gzip -f $L/ncu_raw.csv
rm -f $L/short.ncu-rep
pack
cat $L/rc.txt
for f in bwd_split test_autograd_api test_bwd_configs test_api; do echo "== $f"; grep -v "^\s*$" $L/$f.txt | tail -2 | cut -c1-250; done
grep -n "Stall\|stall" $L/ncu_details.txt | head -60
echo "total $((SECONDS-t0))s"
