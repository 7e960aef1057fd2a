mkdir -p /tmp/m0 && cp -r src /tmp/m0/ && tar xzf .devrun/m.tgz -C /tmp/m0
export PYTHONPATH=/tmp/m0/src
timeout 120 python3 .devrun/intercept.py 2048 n sm90_d64_w3,sm90_d64_w3_p,sm90_d64_p 2>&1 | tee $OUT/i2k_nc.txt
timeout 120 python3 .devrun/intercept.py 2048 c sm90_d64_w3_p,sm90_d64_p 2>&1 | tee $OUT/i2k_c.txt
timeout 120 python3 .devrun/intercept.py 2048 n sm90_d128,sm90_d128_p 128 2>&1 | tee $OUT/i2k_nc128.txt
