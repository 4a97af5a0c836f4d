"""Protocol codecs: inference requests and responses (KServe v1, Open Inference Protocol v2,
plain JSON) and the CloudEvents of KServe's payload logger. Pure: bytes and dicts in,
typed values out."""
