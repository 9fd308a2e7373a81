/**
 * The binary file of a model snapshot (final weights, checkpoints): a
 * 4-byte header length, a JSON header (tensor names, shapes, offsets, the
 * sha256 of the payload, and whatever metadata the caller adds), then the
 * float32 payload. A damaged file is refused by its checksum.
 * @since 0.1.0
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { readFile } from "node:fs/promises"
import { StateFileError } from "../domain/Errors.js"
import { writeFileAtomic } from "../layers/files.js"
import type { ModelSnapshot } from "../services/Model.js"

const FORMAT = "qlr-snapshot"
const VERSION = 1

interface Header {
  readonly format: string
  readonly version: number
  readonly step: number
  readonly sha256: string
  readonly tensors: ReadonlyArray<{ readonly name: string; readonly shape: ReadonlyArray<number>; readonly length: number }>
  readonly meta: unknown
}

/** Encode a snapshot and its metadata as the bytes of a snapshot file. */
export const encodeSnapshot = (snapshot: ModelSnapshot, meta: unknown): Uint8Array => {
  const total = snapshot.tensors.reduce((n, t) => n + t.data.length, 0)
  const payload = new Float32Array(total)
  let offset = 0
  for (const t of snapshot.tensors) {
    payload.set(t.data, offset)
    offset += t.data.length
  }
  const bytes = new Uint8Array(payload.buffer)
  const header: Header = {
    format: FORMAT,
    version: VERSION,
    step: snapshot.step,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    tensors: snapshot.tensors.map((t) => ({ name: t.name, shape: t.shape, length: t.data.length })),
    meta
  }
  const headerBytes = Buffer.from(JSON.stringify(header), "utf8")
  const out = new Uint8Array(4 + headerBytes.length + bytes.length)
  new DataView(out.buffer).setUint32(0, headerBytes.length, true)
  out.set(headerBytes, 4)
  out.set(bytes, 4 + headerBytes.length)
  return out
}

/** Decode a snapshot file's bytes; `source` names the file in errors. */
export const decodeSnapshot = (
  file: Uint8Array,
  source: string
): Effect.Effect<{ readonly snapshot: ModelSnapshot; readonly meta: unknown }, StateFileError> =>
  Effect.gen(function*() {
    const refuse = (problem: string) => new StateFileError({ message: `${source} ${problem}` })
    if (file.length < 4) return yield* refuse("is too short to be a qlr snapshot")
    const headerLength = new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(0, true)
    const header = yield* Effect.try({
      try: () => JSON.parse(Buffer.from(file.subarray(4, 4 + headerLength)).toString("utf8")) as Header,
      catch: () => refuse("has a damaged header: it is not a qlr snapshot, or it was truncated")
    })
    if (header.format !== FORMAT) return yield* refuse("is not a qlr snapshot")
    if (header.version !== VERSION)
      return yield* refuse(`has snapshot version ${header.version}; this qlr reads version ${VERSION}`)
    // A copy: Buffer views may start at any byte, a Float32Array must start at a multiple of 4.
    const payload = new Uint8Array(file.subarray(4 + headerLength))
    if (createHash("sha256").update(payload).digest("hex") !== header.sha256)
      return yield* refuse("is damaged: its checksum does not match its contents (truncated or corrupted on disk)")
    const floats = new Float32Array(payload.buffer, payload.byteOffset, payload.byteLength / 4)
    let offset = 0
    const tensors = header.tensors.map((t) => {
      const data = floats.slice(offset, offset + t.length)
      offset += t.length
      return { name: t.name, shape: t.shape, data }
    })
    return { snapshot: { step: header.step, tensors }, meta: header.meta }
  })

/** Write a snapshot file atomically. */
export const writeSnapshot = (path: string, snapshot: ModelSnapshot, meta: unknown) =>
  writeFileAtomic(path, encodeSnapshot(snapshot, meta), (message) => new StateFileError({ message }))

/** Read and verify a snapshot file. */
export const readSnapshot = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (e) => new StateFileError({ message: `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}` })
  }).pipe(Effect.flatMap((bytes) => decodeSnapshot(bytes, path)))
