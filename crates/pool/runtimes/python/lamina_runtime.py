# lamina_runtime.py: the Lambda runtime interface client lamina uses for python3.x functions.
#
# lamina starts it as the process of an execution environment:
#
#     <python3> -u /path/lamina_runtime.py [--runtime-api-fd=N]
#
# (N: a connection to the Runtime API it inherits; else it connects to AWS_LAMBDA_RUNTIME_API)
# with AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT (also the working directory) and the
# other Lambda variables set. It plays the part of AWS's awslambdaric in the managed runtime:
#
# - Init: puts LAMBDA_TASK_ROOT and the layer directories on sys.path, installs the root logging
#   handler with Lambda's text format, and imports the handler named by _HANDLER
#   ("module.function", "dir/module.function"). A failure is posted to /runtime/init/error with
#   awslambdaric's error types and messages (Runtime.MalformedHandlerName, ...ImportModuleError,
#   ...UserCodeSyntaxError, ...HandlerNotFound, ...BuiltInModuleConflict, or the class name of an
#   exception raised by the module), then the process exits with status 1.
# - Invoke loop: GET /runtime/invocation/next, call handler(event, context), then POST the
#   JSON-serialised result to /invocation/{id}/response, or the error
#   {"errorMessage", "errorType", "requestId", "stackTrace"} to /invocation/{id}/error
#   (also logged as awslambdaric logs it).
#
# It uses the standard library only (python 3.9 to 3.14) and keeps a single HTTP/1.1 connection
# to the Runtime API for all calls. Because python runs with -u, whatever the handler prints has
# been written to the log pipe before the response is posted.

# Start-up time is cold-start time: `socket` (a Python layer over `_socket`) and `traceback`
# (only needed when something fails) are not imported, and neither is `logging` (5 ms of every
# cold start) until the function's code imports it; see LoggingHook.
import _socket
import importlib
import json
import os
import sys
import time

RUNTIME_API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# The request being handled, for the "[LEVEL]\t<time>\t<request id>\t<message>" log lines.
current_request_id = None


class RuntimeAPI:
    """Client of lamina's Runtime API: HTTP/1.1 over one kept-alive connection, the inherited
    one (a Unix socket) if lamina passed one, else a TCP connection to `address`.

    It is written out here rather than using http.client because it runs twice per invoke and
    http.client's header parsing (email.parser) alone costs tens of microseconds a response.
    It sends requests with a Content-Length and reads responses framed by Content-Length,
    chunked encoding, or the end of the connection."""

    def __init__(self, address, fd=None):
        host, _, port = address.rpartition(":")
        self.address = (host.strip("[]"), int(port))
        self.host_header = address
        self.sock = None
        self.buffer = bytearray()  # bytes received but not consumed yet
        if fd is not None:
            os.set_inheritable(fd, False)  # not for the function's child processes
            self.sock = _socket.socket(fileno=fd)

    def next_invocation(self):
        """Block until the next event arrives; return its headers (lower-case names) and body."""
        status, headers, body = self._call("GET", "/invocation/next", None, {})
        if status != 200:
            raise RuntimeError(f"Runtime API answered {status} to /invocation/next: {body!r}")
        return headers, body

    def post(self, path, body, headers):
        """POST a response or an error. The Runtime API answers 202; anything else
        (e.g. 413 for a response that is too large) is logged and otherwise ignored."""
        status, _, answer = self._call("POST", path, body, headers)
        if status != 202:
            sys.stderr.write(f"lamina_runtime: Runtime API answered {status} to {path}: {answer!r}\n")

    def _call(self, method, path, body, headers):
        head = f"{method} {RUNTIME_API_PREFIX}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
        for name, value in headers.items():
            head += f"{name}: {value}\r\n"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        request = head.encode("latin-1") + b"\r\n" + (body or b"")

        reused = self.sock is not None
        try:
            return self._exchange(request)
        except ConnectionError:
            self._close()
            if not reused:
                raise
            # The server closed the kept-alive connection while it was idle: try once on a new one.
            return self._exchange(request)

    def _exchange(self, request):
        if self.sock is None:
            family = _socket.AF_INET6 if ":" in self.address[0] else _socket.AF_INET
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                raise
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self.sock = sock
        self.sock.sendall(request)

        lines = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()

        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            body = self._read_to_end()
        if headers.get("connection", "").lower() == "close":
            self._close()
        return status, headers, body

    def _receive(self, size=65536):
        data = self.sock.recv(size)
        if not data:
            raise ConnectionResetError("the Runtime API closed the connection")
        self.buffer += data

    def _read_until(self, delimiter):
        """The bytes up to the delimiter (which is consumed but not returned)."""
        while (end := self.buffer.find(delimiter)) < 0:
            self._receive()
        data = bytes(self.buffer[:end])
        del self.buffer[: end + len(delimiter)]
        return data

    def _read_exact(self, size):
        while len(self.buffer) < size:
            self._receive(max(size - len(self.buffer), 65536))
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _read_chunked(self):
        chunks = []
        while size := int(self._read_until(b"\r\n").split(b";")[0], 16):
            chunks.append(self._read_exact(size))
            self._read_exact(2)  # the CRLF after the chunk
        while self._read_until(b"\r\n"):  # trailer fields, up to an empty line
            pass
        return b"".join(chunks)

    def _read_to_end(self):
        try:
            while True:
                self._receive()
        except ConnectionResetError:
            pass
        data = bytes(self.buffer)
        self._close()
        return data

    def _close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buffer.clear()


class FaultError(Exception):
    """A failure reported with one of the runtime's own error types (Runtime.*)."""

    def __init__(self, error_type, message, stack_trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


# ---------------------------------------------------------------------------------------------
# Init: sys.path, logging, handler lookup


def set_up_sys_path():
    """LAMBDA_TASK_ROOT first (in place of this script's directory), then the layer directories.

    Layers live in /opt; where lamina cannot mount them there (process isolation) it names
    their merged directory in LAMINA_OPT_DIR instead."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    opt = os.environ.pop("LAMINA_OPT_DIR", None) or "/opt"
    layer_dirs = [f"{opt}/python/lib/{version}/site-packages", f"{opt}/python"]
    sys.path[0:1] = [os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()] + [
        d for d in layer_dirs if os.path.isdir(d)
    ]


class LoggingHook:
    """Installs the Lambda log handler on the root logger when `logging` is imported, before
    the importer sees the module: the function's code finds it configured as in awslambdaric
    without every cold start paying for the import. A meta path finder, removed once used."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_install(module):
            exec_module(module)
            install_log_handler(module)

        spec.loader.exec_module = exec_and_install
        return spec


def set_up_logging():
    if "logging" in sys.modules:
        install_log_handler(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, LoggingHook())


def install_log_handler(logging):
    """Log records of the root logger go to stdout in Lambda's text format (as in awslambdaric;
    the root logger keeps its default WARNING level)."""

    def add_request_id(record):
        record.aws_request_id = current_request_id or ""
        return True

    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(add_request_id)
    logging.getLogger().addHandler(handler)


def load_handler(handler_name):
    """Import the module and return the function named by _HANDLER, like awslambdaric."""
    try:
        module_name, function_name = handler_name.rsplit(".", 1)
    except ValueError as e:
        raise FaultError("Runtime.MalformedHandlerName", f"Bad handler '{handler_name}': {e}")

    if module_name.split(".")[0] in sys.builtin_module_names:
        raise FaultError(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as e:
        raise FaultError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {e}"
        )
    except SyntaxError as e:
        raise FaultError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {e}",
            [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}'],
        )

    try:
        return getattr(module, function_name)
    except AttributeError:
        raise FaultError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )


# ---------------------------------------------------------------------------------------------
# The context object handed to the handler (same attributes as awslambdaric's LambdaContext)


class LambdaContext:
    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context,
                 cognito_identity, tenant_id):
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self.client_context = None if client_context is None else ClientContext(client_context)
        self.identity = CognitoIdentity(cognito_identity or {})
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, message):
        sys.stdout.write(str(message))

    def __repr__(self):
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity):
        self.cognito_identity_id = identity.get("cognitoIdentityId")
        self.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")

    def __repr__(self):
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __init__(self, client_context):
        self.custom = client_context.get("custom")
        self.env = client_context.get("env")
        client = client_context.get("client")
        self.client = None if client is None else Client(client)

    def __repr__(self):
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code",
                 "app_package_name")

    def __init__(self, client):
        for field in self.__slots__:
            setattr(self, field, client.get(field))

    def __repr__(self):
        fields = ",".join(f"{field}={getattr(self, field)}" for field in self.__slots__)
        return f"Client([{fields}])"


def parse_json_header(value, name):
    """The client context and cognito identity headers carry JSON text (or are absent)."""
    if not value:
        return None
    try:
        return json.loads(value)
    except Exception as e:
        raise FaultError(
            "Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {e}"
        )


# ---------------------------------------------------------------------------------------------
# JSON and error formatting


def json_default(value):
    """Values the standard encoder refuses but awslambdaric's simplejson encoder accepts.
    A Decimal becomes an int or a float (simplejson writes its exact digits; a float keeps
    about 17 significant digits)."""
    if isinstance(value, bytes):
        return value.decode()
    decimal = sys.modules.get("decimal")  # without the module loaded there are no Decimals
    if decimal is not None and isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# awslambdaric writes non-ASCII characters as they are for the python3.12 and later runtimes (as
# AWS_EXECUTION_ENV names them, e.g. AWS_Lambda_python3.12), as \u escapes for the earlier ones.
_runtime_minor = os.environ.get("AWS_EXECUTION_ENV", "").rpartition("python3.")[2]
JSON_ENCODER = json.JSONEncoder(
    ensure_ascii=int(_runtime_minor) < 12 if _runtime_minor.isdigit() else sys.version_info < (3, 12),
    default=json_default,
)


def to_json(value):
    """JSON as UTF-8 bytes. A lone surrogate in a string (from an undecodable file name, say)
    becomes a \\udcXX escape, as it does when ensure_ascii is on."""
    return JSON_ENCODER.encode(value).encode("utf-8", "backslashreplace")


def marshal_response(result):
    """The response body and its content type: bytes are passed on as they are, anything else
    is JSON (None becomes null)."""
    if isinstance(result, bytes):
        return result, "application/unknown"
    try:
        return to_json(result), "application/json"
    except Exception as e:
        raise FaultError("Runtime.MarshalError", f"Unable to marshal response: {e}")


def error_body(message, error_type, stack_trace, request_id=""):
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack_trace,
    }


def describe_exception(exc):
    """(errorMessage, errorType, stackTrace) of an exception raised by user code. The stack
    trace starts at the first frame outside this file and, as in awslambdaric, has no column
    markers ('  File "/x/app.py", line 3, in handler\\n    raise ValueError("boom")\\n')."""
    import traceback

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    first_user_frame = next((i for i, f in enumerate(frames) if f[0] != __file__), 0)
    return str(exc), type(exc).__name__, traceback.format_list(frames[first_user_frame:])


def log_error(error):
    """Write an error to the function's log the way awslambdaric does: one line, with "\\r"
    between the lines of the traceback and its indentation made of no-break spaces."""
    description = "[ERROR]"
    if error["errorType"]:
        description += " " + error["errorType"] + (":" if error["errorMessage"] else "")
    if error["errorMessage"]:
        description += " " + error["errorMessage"]
    lines = [description, "Traceback (most recent call last):"]
    for entry in error["stackTrace"]:
        for line in entry.splitlines():
            stripped = line.lstrip(" ")
            lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    sys.stdout.write("\r".join(lines) + "\n")


def post_error(api, path, error):
    # A header value has to be ASCII, and an error class may have a non-ASCII name.
    error_type = error["errorType"].encode("ascii", "replace").decode()
    api.post(path, to_json(error), {ERROR_TYPE_HEADER: error_type, "Content-Type": "application/json"})


# ---------------------------------------------------------------------------------------------
# Main loop


def handle_invocation(api, handler, headers, body):
    global current_request_id
    request_id = current_request_id = headers.get("lambda-runtime-aws-request-id")

    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id is not None:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    try:
        context = LambdaContext(
            request_id,
            int(headers.get("lambda-runtime-deadline-ms") or 0),
            headers.get("lambda-runtime-invoked-function-arn"),
            parse_json_header(headers.get("lambda-runtime-client-context"), "Client Context"),
            parse_json_header(headers.get("lambda-runtime-cognito-identity"), "Cognito Identity"),
            headers.get("lambda-runtime-aws-tenant-id"),
        )
        try:
            event = json.loads(body) if body else {}
        except ValueError as e:
            raise FaultError("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}")
        payload, content_type = marshal_response(handler(event, context))
    except FaultError as e:
        error = error_body(e.message, e.error_type, e.stack_trace, request_id)
    except Exception as e:
        error = error_body(*describe_exception(e), request_id)
    else:
        api.post(f"/invocation/{request_id}/response", payload, {"Content-Type": content_type})
        return
    log_error(error)
    post_error(api, f"/invocation/{request_id}/error", error)


def main():
    # `--runtime-api-fd=N`, taken out of sys.argv (which the function sees).
    fd = None
    for arg in sys.argv[1:]:
        if arg.startswith("--runtime-api-fd="):
            fd = int(arg.split("=", 1)[1])
            sys.argv.remove(arg)
    api = RuntimeAPI(os.environ["AWS_LAMBDA_RUNTIME_API"], fd)
    set_up_sys_path()
    set_up_logging()
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except FaultError as e:
        init_error = error_body(e.message, e.error_type, e.stack_trace)
    except Exception as e:
        init_error = error_body(*describe_exception(e))
    else:
        init_error = None
    if init_error is not None:
        log_error(init_error)
        post_error(api, "/init/error", init_error)
        sys.exit(1)

    while True:
        headers, body = api.next_invocation()
        handle_invocation(api, handler, headers, body)


if __name__ == "__main__":
    main()
