# The header slots of fields.py as C constants, for the compiled engine modules that
# cimport this (tests/speedups/test_fields.py holds the two files equal).

cdef enum:
    HOST = 0
    USER_AGENT = 1
    CONNECTION = 2
    UPGRADE = 3
    EXPECT = 4
    TE = 5
    CONTENT_LENGTH = 6
    TRANSFER_ENCODING = 7
    FORWARDED = 8
    X_FORWARDED_FOR = 9
    X_FORWARDED_HOST = 10
    X_FORWARDED_PROTO = 11
    K_NETWORK_PROBE = 12
    K_NETWORK_HASH = 13
    K_KUBELET_PROBE = 14
    K_PROXY_REQUEST = 15
    K_ORIGINAL_HOST = 16
    KNATIVE_SERVING_REVISION = 17
    KNATIVE_SERVING_NAMESPACE = 18
    KNATIVE_SERVING_TAG = 19
    KNATIVE_SERVING_DEFAULT_ROUTE = 20
    DATE = 21
    CONTENT_TYPE = 22
    KEEP_ALIVE = 23
    TRAILER = 24
    COUNT = 25
    FLAG_CONFLICTING_LENGTH = 1
    FLAG_DUPLICATE_HOST = 2
