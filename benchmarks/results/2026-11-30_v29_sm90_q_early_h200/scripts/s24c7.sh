mkdir -p /tmp/m0 && cp -r src /tmp/m0/ && tar xzf .devrun/m.tgz -C /tmp/m0
export PYTHONPATH=/tmp/m0/src
timeout 200 python3 .devrun/clk.py "2,16,16384;4,16,2048" sm90_d64_w3,sm90_d64_w3_p 2>&1 | grep -v Warn | tee $OUT/clk.txt
