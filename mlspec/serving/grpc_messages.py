"""The message classes of the Open Inference Protocol's gRPC service (KServe v2,
``inference.GRPCInferenceService``), built at import from a FileDescriptorProto written here.

Why not generated ``_pb2`` code: generated code is tied to the protobuf runtime that generated
it (code from a recent protoc refuses to import on Debian bookworm's protobuf 3.21, which serving
images carry, and old code warns or breaks on new runtimes), and a protoc step at image build
time would add a compiler to every build. A descriptor is data that every runtime since 3.x
accepts. It lives in a pool of its own, so a process that also imports a client's copy of the
same protocol (``tritonclient.grpc``) sees no clash. Field numbers and types are those of
Triton's and KServe's ``grpc_service.proto``; tests/serving/test_grpc.py compares them with the
copy in tritonclient.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"
_F = descriptor_pb2.FieldDescriptorProto
BOOL, INT32, INT64, UINT32, UINT64 = _F.TYPE_BOOL, _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32, _F.TYPE_UINT64
FLOAT, DOUBLE, STRING, BYTES, MESSAGE = _F.TYPE_FLOAT, _F.TYPE_DOUBLE, _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_MESSAGE
ONE, MANY = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
PARAMS = "params"  # a map<string, InferParameter> field

# message -> [(field, number, type, label or type name)]; nested messages under "Outer.Inner".
MESSAGES: dict[str, list[tuple]] = {
    "InferParameter": [("bool_param", 1, BOOL, "oneof"), ("int64_param", 2, INT64, "oneof"),
                       ("string_param", 3, STRING, "oneof"), ("double_param", 4, DOUBLE, "oneof"),
                       ("uint64_param", 5, UINT64, "oneof")],
    "InferTensorContents": [("bool_contents", 1, BOOL, MANY), ("int_contents", 2, INT32, MANY),
                            ("int64_contents", 3, INT64, MANY), ("uint_contents", 4, UINT32, MANY),
                            ("uint64_contents", 5, UINT64, MANY), ("fp32_contents", 6, FLOAT, MANY),
                            ("fp64_contents", 7, DOUBLE, MANY), ("bytes_contents", 8, BYTES, MANY)],
    "ServerLiveRequest": [], "ServerLiveResponse": [("live", 1, BOOL, ONE)],
    "ServerReadyRequest": [], "ServerReadyResponse": [("ready", 1, BOOL, ONE)],
    "ModelReadyRequest": [("name", 1, STRING, ONE), ("version", 2, STRING, ONE)],
    "ModelReadyResponse": [("ready", 1, BOOL, ONE)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [("name", 1, STRING, ONE), ("version", 2, STRING, ONE),
                               ("extensions", 3, STRING, MANY)],
    "ModelMetadataRequest": [("name", 1, STRING, ONE), ("version", 2, STRING, ONE)],
    "ModelMetadataResponse.TensorMetadata": [("name", 1, STRING, ONE), ("datatype", 2, STRING, ONE),
                                             ("shape", 3, INT64, MANY)],
    "ModelMetadataResponse": [("name", 1, STRING, ONE), ("versions", 2, STRING, MANY),
                              ("platform", 3, STRING, ONE),
                              ("inputs", 4, MESSAGE, "ModelMetadataResponse.TensorMetadata"),
                              ("outputs", 5, MESSAGE, "ModelMetadataResponse.TensorMetadata")],
    "ModelInferRequest.InferInputTensor": [("name", 1, STRING, ONE), ("datatype", 2, STRING, ONE),
                                           ("shape", 3, INT64, MANY), ("parameters", 4, MESSAGE, PARAMS),
                                           ("contents", 5, MESSAGE, "InferTensorContents")],
    "ModelInferRequest.InferRequestedOutputTensor": [("name", 1, STRING, ONE),
                                                     ("parameters", 2, MESSAGE, PARAMS)],
    "ModelInferRequest": [("model_name", 1, STRING, ONE), ("model_version", 2, STRING, ONE),
                          ("id", 3, STRING, ONE), ("parameters", 4, MESSAGE, PARAMS),
                          ("inputs", 5, MESSAGE, "ModelInferRequest.InferInputTensor"),
                          ("outputs", 6, MESSAGE, "ModelInferRequest.InferRequestedOutputTensor"),
                          ("raw_input_contents", 7, BYTES, MANY)],
    "ModelInferResponse.InferOutputTensor": [("name", 1, STRING, ONE), ("datatype", 2, STRING, ONE),
                                             ("shape", 3, INT64, MANY), ("parameters", 4, MESSAGE, PARAMS),
                                             ("contents", 5, MESSAGE, "InferTensorContents")],
    "ModelInferResponse": [("model_name", 1, STRING, ONE), ("model_version", 2, STRING, ONE),
                           ("id", 3, STRING, ONE), ("parameters", 4, MESSAGE, PARAMS),
                           ("outputs", 5, MESSAGE, "ModelInferResponse.InferOutputTensor"),
                           ("raw_output_contents", 6, BYTES, MANY)],
}
# rpc -> (request, response), all unary.
METHODS = {name: (f"{name}Request", f"{name}Response")
           for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")}


def _fields(msg: descriptor_pb2.DescriptorProto, owner: str, fields: list[tuple]) -> None:
    for name, number, kind, how in fields:
        f = msg.field.add(name=name, number=number, type=kind, label=MANY if how in (MANY, PARAMS) else ONE)
        if how == "oneof":
            if not msg.oneof_decl:
                msg.oneof_decl.add(name="parameter_choice")
            f.oneof_index = 0
        elif how == PARAMS:  # map<string, InferParameter>: a nested entry message, as protoc makes it
            entry = msg.nested_type.add(name="ParametersEntry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=STRING, label=ONE)
            entry.field.add(name="value", number=2, type=MESSAGE, label=ONE, type_name=f".{PACKAGE}.InferParameter")
            f.type_name = f".{PACKAGE}.{owner}.ParametersEntry"
        elif kind == MESSAGE:  # a nested tensor list, or one contents message
            f.type_name = f".{PACKAGE}.{how}"
            f.label = ONE if how == "InferTensorContents" else MANY


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="mlspec/grpc_service.proto", package=PACKAGE, syntax="proto3")
    made: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full in MESSAGES:
        outer, _, inner = full.partition(".")
        if outer not in made:
            made[outer] = fd.message_type.add(name=outer)
        if inner:
            made[full] = made[outer].nested_type.add(name=inner)
    for full, fields in MESSAGES.items():
        _fields(made[full], full, fields)
    service = fd.service.add(name=SERVICE.rpartition(".")[2])
    for name, (req, resp) in METHODS.items():
        service.method.add(name=name, input_type=f".{PACKAGE}.{req}", output_type=f".{PACKAGE}.{resp}")
    return fd


def _classes() -> dict:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get is None:  # Debian bookworm's 3.21
        get = message_factory.MessageFactory(pool).GetPrototype
    return {name: get(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in MESSAGES}


CLASSES = _classes()
