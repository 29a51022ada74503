// lamina_runtime.cjs: the Lambda runtime interface client lamina uses for nodejs*.x functions.
//
// lamina starts it as the process of an execution environment:
//
//     node /path/lamina_runtime.cjs --runtime-api-fd=N
//
// where N is its connection to the Runtime API (a Unix socket it inherits), with
// AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT (also the working directory) and the
// other Lambda variables set. It plays the part of AWS's aws-lambda-ric in the managed runtime:
//
// - Init: console.* writes Lambda's text format ("<ISO time>\t<request id>\t<LEVEL>\t<message>")
//   to stdout, and the handler named by _HANDLER ("file.export", "dir/file.export", "file.nested.export") is loaded from
//   LAMBDA_TASK_ROOT: file, file.js (CommonJS, or ES module under a package.json with
//   "type": "module"), file.mjs, file.cjs, then as a package name. A failure is posted to
//   /runtime/init/error with aws-lambda-ric's error types and messages
//   (Runtime.MalformedHandlerName, Runtime.ImportModuleError, Runtime.UserCodeSyntaxError,
//   Runtime.HandlerNotFound, or the error thrown by the module), then the process exits with
//   status 1.
// - Invoke loop: GET /runtime/invocation/next, call handler(event, context, callback), then POST
//   the JSON result to /invocation/{id}/response or {"errorType", "errorMessage", "trace"} to
//   /invocation/{id}/error. Handlers may return a promise, call the callback, or use
//   context.succeed/fail/done. As in AWS, a callback result is sent only once the event loop
//   has nothing left to do, unless context.callbackWaitsForEmptyEventLoop is set to false; a
//   handler that neither returns a promise nor calls back answers null at that point. An
//   exception or promise rejection nobody handles fails the current invoke and ends the process
//   (status 129 or 128), as in aws-lambda-ric.
//
// Built-in modules only (node 18 to 24). All calls share the one inherited connection. Output that
// stdout or stderr still holds is written out before a response or error is posted. require()
// finds layer packages through NODE_PATH, which lamina sets as AWS does.

"use strict";

// CommonJS, not an ES module: Node.js starts a CommonJS entry point about 4 ms sooner (measured
// on the 2-core VM: an empty .mjs 34-36 ms p50, an empty .cjs 31-32 ms), and every cold start
// pays it. ES module handlers are still loaded with import().
const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");
const util = require("node:util");


// ---------------------------------------------------------------------------------------------
// Runtime API client

/** Client of lamina's Runtime API: HTTP/1.1 over the connection lamina passed as a file
 * descriptor, with blocking reads and writes.
 *
 * Why not a socket of node:net: loading node:net costs 2-3.5 ms of every cold start (1.9 ms of
 * it node:stream) and connecting 1.8 ms more, against 26-34 ms for the whole bare interpreter
 * here; node:http's per-request machinery costs over a hundred microseconds of CPU per invoke
 * on top. Blocking is what Lambda does anyway: between a response and the next event the
 * environment is frozen, and nothing of the function runs. Requests go out one at a time;
 * responses are framed by Content-Length, chunked encoding, or the end of the connection.
 * Node.js cannot mark the descriptor close-on-exec, so processes the function starts inherit
 * it; they do not know it is there, and lamina kills them with the environment. */
class RuntimeApiClient {
  #fd;
  #host;
  #buffer = Buffer.allocUnsafe(64 * 1024); // bytes of responses read, from 0 to #length
  #length = 0;

  constructor(fd, host) {
    this.#fd = fd;
    this.#host = host;
  }

  /** Send a request and wait for its response: { status, headers, body }, with lower-case
   * header names and the body as a string. */
  call(method, apiPath, body, headers = {}) {
    let head = `${method} /2018-06-01/runtime${apiPath} HTTP/1.1\r\nHost: ${this.#host}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    if (body !== undefined) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
    const request = Buffer.from(`${head}\r\n${body ?? ""}`);
    for (let sent = 0; sent < request.length; ) sent += fs.writeSync(this.#fd, request, sent);

    for (;;) {
      let response = parseResponse(this.#buffer.subarray(0, this.#length), false);
      if (response === null) {
        if (this.#length === this.#buffer.length) {
          const bigger = Buffer.allocUnsafe(this.#buffer.length * 2);
          this.#buffer.copy(bigger, 0, 0, this.#length);
          this.#buffer = bigger;
        }
        const read = fs.readSync(this.#fd, this.#buffer, this.#length, this.#buffer.length - this.#length, null);
        if (read > 0) {
          this.#length += read;
          continue;
        }
        response = parseResponse(this.#buffer.subarray(0, this.#length), true);
        if (response === null) throw new Error("the Runtime API closed the connection");
      }
      // What follows this response (nothing, as requests go one at a time) moves to the front.
      this.#buffer.copy(this.#buffer, 0, response.length, this.#length);
      this.#length -= response.length;
      return response;
    }
  }
}

/** The first HTTP response in data, or null if it is not complete yet. `ended`: the connection
 * has closed, which ends a response that has neither a Content-Length nor chunked encoding. */
function parseResponse(data, ended) {
  const headEnd = data.indexOf("\r\n\r\n");
  if (headEnd < 0) return null;
  const [statusLine, ...headerLines] = data.toString("latin1", 0, headEnd).split("\r\n");
  const headers = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(statusLine.split(" ")[1]);
  const bodyStart = headEnd + 4;

  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
    const chunks = [];
    let position = bodyStart;
    for (;;) {
      const sizeEnd = data.indexOf("\r\n", position);
      if (sizeEnd < 0) return null;
      const size = parseInt(data.toString("latin1", position, sizeEnd), 16);
      if (size === 0) {
        const trailerEnd = data.indexOf("\r\n\r\n", sizeEnd); // after any trailer fields
        if (trailerEnd < 0) return null;
        return { status, headers, body: Buffer.concat(chunks).toString(), length: trailerEnd + 4 };
      }
      if (data.length < sizeEnd + 2 + size + 2) return null;
      chunks.push(data.subarray(sizeEnd + 2, sizeEnd + 2 + size));
      position = sizeEnd + 2 + size + 2;
    }
  }
  if (headers["content-length"] !== undefined) {
    const end = bodyStart + Number(headers["content-length"]);
    if (data.length < end) return null;
    return { status, headers, body: data.toString("utf8", bodyStart, end), length: end };
  }
  return ended ? { status, headers, body: data.toString("utf8", bodyStart), length: data.length } : null;
}

/** The connection's descriptor, from `--runtime-api-fd=N` (taken out of process.argv, which
 * the function sees). */
function runtimeApiFd() {
  const index = process.argv.findIndex((arg) => arg.startsWith("--runtime-api-fd="));
  const fd = index < 0 ? NaN : Number(process.argv[index].slice("--runtime-api-fd=".length));
  if (!Number.isInteger(fd) || fd < 0) {
    process.stderr.write("lamina_runtime: start it with --runtime-api-fd=N, a connection to the Runtime API\n");
    process.exit(1);
  }
  process.argv.splice(index, 1);
  return fd;
}

const runtimeApi = new RuntimeApiClient(runtimeApiFd(), process.env.AWS_LAMBDA_RUNTIME_API);

function nextInvocation() {
  const answer = runtimeApi.call("GET", "/invocation/next");
  if (answer.status !== 200) {
    throw new Error(`Runtime API answered ${answer.status} to /invocation/next: ${answer.body}`);
  }
  return answer;
}

/** POST a response or an error. The Runtime API answers 202; anything else (e.g. 413 for a
 * response that is too large) is logged and otherwise ignored. */
async function post(apiPath, body, headers = {}) {
  await stdioFlushed();
  const answer = runtimeApi.call("POST", apiPath, body, { "Content-Type": "application/json", ...headers });
  if (answer.status !== 202) {
    process.stderr.write(`lamina_runtime: Runtime API answered ${answer.status} to ${apiPath}: ${answer.body}\n`);
  }
}

function postError(apiPath, error) {
  const body = errorResponse(error);
  // A header value must be printable ASCII.
  const errorType = String(body.errorType).replace(/[^\x20-\x7e]/g, "?");
  return post(apiPath, JSON.stringify(body), { "Lambda-Runtime-Function-Error-Type": errorType });
}

/** The names of the standard streams something has used. Node.js makes process.stdout and
 * process.stderr on first use (about 1 ms for the two pipes, every cold start), so their getters
 * are wrapped to note the use, and stdioFlushed() leaves unused ones unmade. */
const usedStdio = new Set();
for (const name of ["stdout", "stderr"]) {
  const descriptor = Object.getOwnPropertyDescriptor(process, name);
  if (descriptor?.configurable && typeof descriptor.get === "function") {
    Object.defineProperty(process, name, {
      ...descriptor,
      get() {
        usedStdio.add(name);
        return descriptor.get.call(this);
      },
    });
  } else {
    usedStdio.add(name);
  }
}

/** Resolves once whatever stdout and stderr still buffer has been written to the log pipe.
 * (Writes to a pipe are asynchronous once the pipe is full.) */
function stdioFlushed() {
  const pending = [...usedStdio].map((name) => process[name]).filter((stream) => stream.writableLength > 0);
  return Promise.all(pending.map((stream) => new Promise((resolve) => stream.write("", resolve))));
}

// ---------------------------------------------------------------------------------------------
// Errors and logging, formatted as aws-lambda-ric formats them

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const errorClass of [ImportModuleError, HandlerNotFound, MalformedHandlerName, UserCodeSyntaxError, UnhandledPromiseRejection]) {
  errorClass.prototype.name = `Runtime.${errorClass.name}`;
}

/** The error body posted to the Runtime API. A thrown value that is not an error gets its
 * typeof as errorType ("string", "number", ...). DEL characters become "%7F". */
function errorResponse(error) {
  const escapeDel = (text) => text.replace(/\x7F/g, "%7F");
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name && escapeDel(error.name),
        errorMessage: error.message && escapeDel(error.message),
        trace: escapeDel(error.stack).split("\n"),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch {
    return {
      errorType: "handled",
      errorMessage:
        "callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack",
    };
  }
}

function isErrorLike(value) {
  return Boolean(value) && ["name", "message", "stack"].every((key) => typeof value[key] === "string" && value[key]);
}

/** The request being handled, shown in log lines (it stays set after the invoke, as in AWS). */
let logRequestId;

function patchConsole() {
  const logAt = (level) => (message, ...params) => {
    const line = `${new Date().toISOString()}\t${logRequestId}\t${level}\t${util.format(message, ...params)}`;
    process.stdout.write(line.replace(/\n/g, "\r") + "\n");
  };
  console.trace = logAt("TRACE");
  console.debug = logAt("DEBUG");
  console.info = console.log = logAt("INFO");
  console.warn = logAt("WARN");
  console.error = logAt("ERROR");
  console.fatal = logAt("FATAL");
}

/** Log a failure, e.g. "Invoke Error \t{"errorType":"Error","errorMessage":"boom","stack":[...]}". */
function logError(title, error) {
  const err = error instanceof Error ? error : new Error(error);
  const withErrorFields = (_key, value) => {
    if (!(value instanceof Error)) return value;
    const fields = { errorType: value.name, errorMessage: value.message, code: value.code, ...value };
    if (typeof value.stack === "string") fields.stack = value.stack.split("\n");
    return fields;
  };
  let formatted;
  try {
    formatted = JSON.stringify(err, withErrorFields);
  } catch {
    formatted = JSON.stringify(errorResponse(err));
  }
  console.error(title, `\t${formatted}`);
}

// ---------------------------------------------------------------------------------------------
// Init: finding and loading the handler

async function loadHandler(taskRoot, fullHandler) {
  if (fullHandler.includes("..")) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const moduleRoot = fullHandler.slice(0, fullHandler.lastIndexOf("/") + 1);
  const match = /^([^.]*)\.(.*)$/.exec(fullHandler.slice(moduleRoot.length));
  if (!match) throw new MalformedHandlerName("Bad handler");
  const [, moduleName, exportPath] = match;

  let userModule;
  try {
    userModule = await loadUserModule(taskRoot, moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) throw new UserCodeSyntaxError(err);
    // Only require()'s error: a package an ES module imports but nobody has (ERR_MODULE_NOT_FOUND)
    // is reported as the plain Error it is, as in AWS.
    if (err?.code === "MODULE_NOT_FOUND") throw new ImportModuleError(err);
    throw err;
  }
  const handler = exportPath.split(".").reduce((value, key) => value && value[key], userModule);
  if (!handler) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof handler !== "function") throw new HandlerNotFound(`${fullHandler} is not a function`);
  return handler;
}

/** The module's exports: module.exports of a CommonJS module, the namespace of an ES module. */
async function loadUserModule(taskRoot, moduleRoot, moduleName) {
  const file = path.resolve(taskRoot, moduleRoot, moduleName);
  const importFile = (filePath) => import(pathToFileURL(filePath).href);
  if (fs.existsSync(file)) return require(file);
  if (fs.existsSync(`${file}.js`)) {
    return isInModulePackage(path.dirname(file)) ? importFile(`${file}.js`) : require(`${file}.js`);
  }
  if (fs.existsSync(`${file}.mjs`)) return importFile(`${file}.mjs`);
  if (fs.existsSync(`${file}.cjs`)) return require(`${file}.cjs`);
  return require(require.resolve(moduleName, { paths: [taskRoot, moduleRoot] }));
}

/** Whether the nearest package.json above a directory says "type": "module". */
function isInModulePackage(dir) {
  if (dir.endsWith("/node_modules")) return false;
  const packageJson = path.join(dir, "package.json");
  if (fs.existsSync(packageJson)) {
    try {
      return JSON.parse(fs.readFileSync(packageJson, "utf8"))?.type === "module";
    } catch (err) {
      console.warn(`${packageJson} cannot be read, it will be ignored for ES module detection purposes.`, err);
      return false;
    }
  }
  return dir !== "/" && isInModulePackage(path.dirname(dir));
}

// ---------------------------------------------------------------------------------------------
// Invokes

/** The id of the invoke in progress, if any. */
let currentInvokeId = null;
/** What to do when the event loop runs out of work during an invoke (see the header comment). */
let onEmptyEventLoop = null;

/** Run the handler on one event; resolves to { result } or { error }, however the handler answers.
 * The first answer counts: callback, context.succeed/fail/done, or the promise it returns. */
function runHandler(handler, invocation) {
  return new Promise((settle) => {
    let settled = false;
    let answered = false;
    let waitForEmptyEventLoop = true;

    const finish = (outcome) => {
      if (settled) return;
      settled = true;
      onEmptyEventLoop = null;
      settle(outcome);
    };
    const firstAnswer = (answer) => (...args) => {
      if (answered || settled) return;
      answered = true;
      answer(...args);
    };
    const succeed = firstAnswer((result) => finish({ result }));
    const fail = firstAnswer((error) => finish({ error: error ?? "handled" }));
    const done = firstAnswer((error, result) => finish(error != null ? { error } : { result }));
    const callback = firstAnswer((error, result) => {
      if (error != null) finish({ error });
      else if (waitForEmptyEventLoop) onEmptyEventLoop = () => finish({ result });
      else finish({ result });
    });

    onEmptyEventLoop = () => finish({ result: null });
    try {
      const event = invocation.body ? JSON.parse(invocation.body) : {};
      const context = {
        get callbackWaitsForEmptyEventLoop() {
          return waitForEmptyEventLoop;
        },
        set callbackWaitsForEmptyEventLoop(value) {
          waitForEmptyEventLoop = value;
        },
        succeed,
        fail,
        done,
        ...invokeContext(invocation.headers),
      };
      const returned = handler(event, context, callback);
      if (typeof returned?.then === "function") returned.then(succeed, fail);
    } catch (err) {
      callback(err);
    }
  });
}

/** The context fields that come from the environment and the /next headers. */
function invokeContext(headers) {
  const deadlineMs = Number(headers["lambda-runtime-deadline-ms"]);
  return {
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJsonHeader(headers["lambda-runtime-client-context"], "ClientContext"),
    identity: parseJsonHeader(headers["lambda-runtime-cognito-identity"], "CognitoIdentity"),
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    tenantId: headers["lambda-runtime-aws-tenant-id"],
    getRemainingTimeInMillis: () => deadlineMs - Date.now(),
  };
}

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err}`);
  }
}

async function handleInvocation(handler, invocation) {
  const requestId = invocation.headers["lambda-runtime-aws-request-id"];
  currentInvokeId = logRequestId = requestId;
  const traceId = invocation.headers["lambda-runtime-trace-id"];
  if (traceId !== undefined) process.env._X_AMZN_TRACE_ID = traceId;
  else delete process.env._X_AMZN_TRACE_ID;

  let { result, error } = await runHandler(handler, invocation);
  let body;
  if (error === undefined) {
    try {
      // undefined (and a function or symbol, which JSON cannot hold) are sent as null.
      body = JSON.stringify(result === undefined ? null : result) ?? "null";
    } catch {
      error = new Error("Unable to stringify response body");
    }
  }
  if (error === undefined) {
    await post(`/invocation/${requestId}/response`, body);
  } else {
    logError("Invoke Error", error);
    await postError(`/invocation/${requestId}/error`, error);
  }
  currentInvokeId = null;
}

// ---------------------------------------------------------------------------------------------
// Main

let initDone = false;

/** An exception or rejection nobody handled: fail the invoke in progress (or the init), then
 * end the process. */
async function failProcess(error, exitCodeAfterInit) {
  try {
    if (!initDone) await postError("/init/error", error);
    else if (currentInvokeId !== null) await postError(`/invocation/${currentInvokeId}/error`, error);
  } finally {
    await stdioFlushed();
    process.exit(initDone ? exitCodeAfterInit : 1);
  }
}

async function main() {
  patchConsole();
  process.on("uncaughtException", (error) => {
    logError("Uncaught Exception", error);
    failProcess(error, 129);
  });
  process.on("unhandledRejection", (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError("Unhandled Promise Rejection", error);
    failProcess(error, 128);
  });
  process.on("beforeExit", () => {
    const action = onEmptyEventLoop;
    onEmptyEventLoop = null;
    action?.();
  });

  let handler;
  try {
    handler = await loadHandler(process.env.LAMBDA_TASK_ROOT || process.cwd(), process.env._HANDLER ?? "");
  } catch (error) {
    logError("Uncaught Exception", error);
    await postError("/init/error", error);
    await stdioFlushed();
    process.exit(1);
  }
  initDone = true;

  for (;;) {
    await handleInvocation(handler, nextInvocation());
  }
}

main().catch((err) => {
  process.stderr.write(`lamina_runtime: ${err?.stack ?? err}\n`);
  process.exit(1);
});
