"""Generated gRPC code: edit protos/ and run tools/gen_protos.py."""
