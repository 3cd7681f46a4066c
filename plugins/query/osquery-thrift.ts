/**
 * The part of osquery's extension API (osquery/extensions/thrift/osquery.thrift,
 * Copyright (c) Facebook, Inc. and its affiliates, Apache-2.0 / GPL-2.0) that
 * Outpost speaks, written out as the Thrift compiler's Node.js generator
 * would emit it, for the `thrift` runtime package. There is no maintained
 * osquery SDK for Node, so the IDL subset is reproduced here:
 *
 *   struct ExtensionStatus   { 1: i32 code, 2: string message, 3: i64 uuid }
 *   struct ExtensionResponse { 1: ExtensionStatus status, 2: list<map<string,string>> response }
 *   struct InternalExtensionInfo { 1: string name, 2: string version, 3: string sdk_version, 4: string min_sdk_version }
 *   service Extension { ExtensionStatus ping() }
 *   service ExtensionManager extends Extension {
 *     map<i64, InternalExtensionInfo> extensions(),
 *     ExtensionResponse query(1: string sql),
 *     ExtensionResponse getQueryColumns(1: string sql),
 *   }
 *
 * Transport and protocol are what osqueryd uses on its extension socket:
 * TBufferedTransport + TBinaryProtocol over a unix domain socket. The
 * Processor half serves the same IDL; the test suite uses it as a stand-in
 * osqueryd.
 */

import type { TProtocol, TTransport } from "thrift";
import * as thrift from "thrift";

const { Type, MessageType, TApplicationException, TApplicationExceptionType } = thrift.Thrift;

export interface ExtensionStatus {
  code: number;
  message: string;
  uuid: number;
}

export type ExtensionPluginResponse = Record<string, string>[];

export interface ExtensionResponse {
  status: ExtensionStatus;
  response: ExtensionPluginResponse;
}

export interface InternalExtensionInfo {
  name: string;
  version: string;
  sdk_version: string;
  min_sdk_version: string;
}

export type InternalExtensionList = Map<number, InternalExtensionInfo>;

// ---- structs ----------------------------------------------------------------

function writeStatus(out: TProtocol, s: ExtensionStatus): void {
  out.writeStructBegin("ExtensionStatus");
  out.writeFieldBegin("code", Type.I32, 1);
  out.writeI32(s.code);
  out.writeFieldEnd();
  out.writeFieldBegin("message", Type.STRING, 2);
  out.writeString(s.message);
  out.writeFieldEnd();
  out.writeFieldBegin("uuid", Type.I64, 3);
  out.writeI64(s.uuid);
  out.writeFieldEnd();
  out.writeFieldStop();
  out.writeStructEnd();
}

function readStatus(input: TProtocol): ExtensionStatus {
  const s: ExtensionStatus = { code: 0, message: "", uuid: 0 };
  input.readStructBegin();
  for (;;) {
    const f = input.readFieldBegin();
    if (f.ftype === Type.STOP) break;
    if (f.fid === 1 && f.ftype === Type.I32) s.code = input.readI32();
    else if (f.fid === 2 && f.ftype === Type.STRING) s.message = input.readString();
    else if (f.fid === 3 && f.ftype === Type.I64) s.uuid = input.readI64().toNumber();
    else input.skip(f.ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return s;
}

function writeRows(out: TProtocol, rows: ExtensionPluginResponse): void {
  out.writeListBegin(Type.MAP, rows.length);
  for (const row of rows) {
    const entries = Object.entries(row);
    out.writeMapBegin(Type.STRING, Type.STRING, entries.length);
    for (const [k, v] of entries) {
      out.writeString(k);
      out.writeString(v);
    }
    out.writeMapEnd();
  }
  out.writeListEnd();
}

function readRows(input: TProtocol): ExtensionPluginResponse {
  const rows: ExtensionPluginResponse = [];
  const list = input.readListBegin();
  for (let i = 0; i < list.size; i++) {
    const row: Record<string, string> = {};
    const map = input.readMapBegin();
    for (let j = 0; j < map.size; j++) {
      const k = input.readString();
      row[k] = input.readString();
    }
    input.readMapEnd();
    rows.push(row);
  }
  input.readListEnd();
  return rows;
}

function writeResponse(out: TProtocol, r: ExtensionResponse): void {
  out.writeStructBegin("ExtensionResponse");
  out.writeFieldBegin("status", Type.STRUCT, 1);
  writeStatus(out, r.status);
  out.writeFieldEnd();
  out.writeFieldBegin("response", Type.LIST, 2);
  writeRows(out, r.response);
  out.writeFieldEnd();
  out.writeFieldStop();
  out.writeStructEnd();
}

function readResponse(input: TProtocol): ExtensionResponse {
  const r: ExtensionResponse = { status: { code: 0, message: "", uuid: 0 }, response: [] };
  input.readStructBegin();
  for (;;) {
    const f = input.readFieldBegin();
    if (f.ftype === Type.STOP) break;
    if (f.fid === 1 && f.ftype === Type.STRUCT) r.status = readStatus(input);
    else if (f.fid === 2 && f.ftype === Type.LIST) r.response = readRows(input);
    else input.skip(f.ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return r;
}

function writeInfo(out: TProtocol, i: InternalExtensionInfo): void {
  out.writeStructBegin("InternalExtensionInfo");
  const fields: [keyof InternalExtensionInfo, number][] = [
    ["name", 1],
    ["version", 2],
    ["sdk_version", 3],
    ["min_sdk_version", 4],
  ];
  for (const [name, id] of fields) {
    out.writeFieldBegin(name, Type.STRING, id);
    out.writeString(i[name]);
    out.writeFieldEnd();
  }
  out.writeFieldStop();
  out.writeStructEnd();
}

function readInfo(input: TProtocol): InternalExtensionInfo {
  const i: InternalExtensionInfo = { name: "", version: "", sdk_version: "", min_sdk_version: "" };
  const names = ["", "name", "version", "sdk_version", "min_sdk_version"] as const;
  input.readStructBegin();
  for (;;) {
    const f = input.readFieldBegin();
    if (f.ftype === Type.STOP) break;
    const name = names[f.fid];
    if (name && f.ftype === Type.STRING) i[name] = input.readString();
    else input.skip(f.ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return i;
}

function writeExtensionList(out: TProtocol, list: InternalExtensionList): void {
  out.writeMapBegin(Type.I64, Type.STRUCT, list.size);
  for (const [uuid, info] of list) {
    out.writeI64(uuid);
    writeInfo(out, info);
  }
  out.writeMapEnd();
}

function readExtensionList(input: TProtocol): InternalExtensionList {
  const out: InternalExtensionList = new Map();
  const map = input.readMapBegin();
  for (let i = 0; i < map.size; i++) {
    const uuid = input.readI64().toNumber();
    out.set(uuid, readInfo(input));
  }
  input.readMapEnd();
  return out;
}

// ---- method argument / result structs ---------------------------------------

type MethodName = "ping" | "extensions" | "query" | "getQueryColumns";

function writeArgs(out: TProtocol, method: MethodName, sql?: string): void {
  out.writeStructBegin(`ExtensionManager_${method}_args`);
  if (sql !== undefined) {
    out.writeFieldBegin("sql", Type.STRING, 1);
    out.writeString(sql);
    out.writeFieldEnd();
  }
  out.writeFieldStop();
  out.writeStructEnd();
}

function readArgs(input: TProtocol): { sql?: string } {
  const args: { sql?: string } = {};
  input.readStructBegin();
  for (;;) {
    const f = input.readFieldBegin();
    if (f.ftype === Type.STOP) break;
    if (f.fid === 1 && f.ftype === Type.STRING) args.sql = input.readString();
    else input.skip(f.ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return args;
}

/** A `<method>_result` struct: field 0 "success" holds the return value. */
function readResult<T>(input: TProtocol, successType: number, read: (i: TProtocol) => T): T | undefined {
  let success: T | undefined;
  input.readStructBegin();
  for (;;) {
    const f = input.readFieldBegin();
    if (f.ftype === Type.STOP) break;
    if (f.fid === 0 && f.ftype === successType) success = read(input);
    else input.skip(f.ftype);
    input.readFieldEnd();
  }
  input.readStructEnd();
  return success;
}

function writeResult(out: TProtocol, method: MethodName, successType: number, write: () => void): void {
  out.writeStructBegin(`ExtensionManager_${method}_result`);
  out.writeFieldBegin("success", successType, 0);
  write();
  out.writeFieldEnd();
  out.writeFieldStop();
  out.writeStructEnd();
}

// ---- client -----------------------------------------------------------------

type Callback = (err: unknown, result?: unknown) => void;
type ProtocolClass = new (trans: TTransport) => TProtocol;

/** ExtensionManager client in the generated-code shape `thrift.createClient` expects. */
export class ExtensionManagerClient {
  _seqid = 0;
  _reqs: Record<number, Callback> = {};

  constructor(
    readonly output: TTransport,
    readonly pClass: ProtocolClass,
  ) {}

  new_seqid(): number {
    this._seqid += 1;
    return this._seqid;
  }

  seqid(): number {
    return this._seqid;
  }

  ping(): Promise<ExtensionStatus> {
    return this.call("ping") as Promise<ExtensionStatus>;
  }

  extensions(): Promise<InternalExtensionList> {
    return this.call("extensions") as Promise<InternalExtensionList>;
  }

  query(sql: string): Promise<ExtensionResponse> {
    return this.call("query", sql) as Promise<ExtensionResponse>;
  }

  getQueryColumns(sql: string): Promise<ExtensionResponse> {
    return this.call("getQueryColumns", sql) as Promise<ExtensionResponse>;
  }

  /** Fails every outstanding call (the connection is gone). */
  failAll(err: Error): void {
    const reqs = this._reqs;
    this._reqs = {};
    for (const cb of Object.values(reqs)) cb(err);
  }

  private call(method: MethodName, sql?: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.new_seqid();
      this._reqs[id] = (err, result) => (err ? reject(err) : resolve(result));
      const out = new this.pClass(this.output);
      out.writeMessageBegin(method, MessageType.CALL, id);
      writeArgs(out, method, sql);
      out.writeMessageEnd();
      this.output.flush();
    });
  }

  private recv(
    input: TProtocol,
    mtype: number,
    rseqid: number,
    type: number,
    read: (i: TProtocol) => unknown,
    method: string,
  ): void {
    const callback = this._reqs[rseqid] ?? (() => {});
    delete this._reqs[rseqid];
    if (mtype === MessageType.EXCEPTION) {
      const x = new TApplicationException();
      x.read(input);
      input.readMessageEnd();
      callback(x);
      return;
    }
    const success = readResult(input, type, read);
    input.readMessageEnd();
    if (success !== undefined) callback(null, success);
    else
      callback(
        new TApplicationException(
          TApplicationExceptionType.MISSING_RESULT,
          `${method} failed: unknown result`,
        ),
      );
  }

  recv_ping(input: TProtocol, mtype: number, rseqid: number): void {
    this.recv(input, mtype, rseqid, Type.STRUCT, readStatus, "ping");
  }
  recv_extensions(input: TProtocol, mtype: number, rseqid: number): void {
    this.recv(input, mtype, rseqid, Type.MAP, readExtensionList, "extensions");
  }
  recv_query(input: TProtocol, mtype: number, rseqid: number): void {
    this.recv(input, mtype, rseqid, Type.STRUCT, readResponse, "query");
  }
  recv_getQueryColumns(input: TProtocol, mtype: number, rseqid: number): void {
    this.recv(input, mtype, rseqid, Type.STRUCT, readResponse, "getQueryColumns");
  }
}

// ---- processor (server side) ------------------------------------------------

export interface ExtensionManagerHandler {
  ping(): ExtensionStatus | Promise<ExtensionStatus>;
  extensions(): InternalExtensionList | Promise<InternalExtensionList>;
  query(sql: string): ExtensionResponse | Promise<ExtensionResponse>;
  getQueryColumns(sql: string): ExtensionResponse | Promise<ExtensionResponse>;
}

/** ExtensionManager processor in the generated-code shape `thrift.createServer` expects. */
export class ExtensionManagerProcessor {
  constructor(private readonly handler: ExtensionManagerHandler) {}

  process(input: TProtocol, output: TProtocol): void {
    const r = input.readMessageBegin();
    const method = r.fname as MethodName;
    const args = readArgs(input);
    input.readMessageEnd();
    const reply = (type: number, write: () => void) => {
      output.writeMessageBegin(method, MessageType.REPLY, r.rseqid);
      writeResult(output, method, type, write);
      output.writeMessageEnd();
      output.flush();
    };
    const fail = (e: unknown) => {
      const x = new TApplicationException(
        TApplicationExceptionType.INTERNAL_ERROR,
        (e as Error)?.message ?? String(e),
      );
      output.writeMessageBegin(method, MessageType.EXCEPTION, r.rseqid);
      x.write(output);
      output.writeMessageEnd();
      output.flush();
    };
    const h = this.handler;
    const run = <T>(fn: () => T | Promise<T>, type: number, write: (v: T) => void) => {
      Promise.resolve()
        .then(fn)
        .then((v) => reply(type, () => write(v)), fail);
    };
    switch (method) {
      case "ping":
        run(
          () => h.ping(),
          Type.STRUCT,
          (v) => writeStatus(output, v),
        );
        return;
      case "extensions":
        run(
          () => h.extensions(),
          Type.MAP,
          (v) => writeExtensionList(output, v),
        );
        return;
      case "query":
        run(
          () => h.query(args.sql ?? ""),
          Type.STRUCT,
          (v) => writeResponse(output, v),
        );
        return;
      case "getQueryColumns":
        run(
          () => h.getQueryColumns(args.sql ?? ""),
          Type.STRUCT,
          (v) => writeResponse(output, v),
        );
        return;
      default: {
        const x = new TApplicationException(
          TApplicationExceptionType.UNKNOWN_METHOD,
          `Unknown function ${r.fname}`,
        );
        output.writeMessageBegin(r.fname, MessageType.EXCEPTION, r.rseqid);
        x.write(output);
        output.writeMessageEnd();
        output.flush();
      }
    }
  }
}
