// A logistic-regression model for Outpost's MLModel ABI (docs/ml.md), in AssemblyScript.
// Built by `contentctl ml build --source logistic.as` (asc --runtime stub, no imports).
//
// weights.bin: "OPML" | u32 format (1) | u32 n | f32 mean[n] | f32 scale[n] | f32 w[n] | f32 bias
// score = sigmoid(bias + Σ w[i] · (x[i] − mean[i]) / scale[i])

const N: i32 = 37; // feature version 1
let mean: usize = 0;
let scale: usize = 0;
let w: usize = 0;
let bias: f32 = 0;
let ready: bool = false;

export function alloc(bytes: i32): i32 {
  return <i32>heap.alloc(<usize>bytes);
}

export function features_len(): i32 {
  return N;
}

export function init(ptr: i32, len: i32): i32 {
  if (len != 12 + 4 * (3 * N + 1)) return 1;
  if (load<u32>(ptr) != 0x4c4d504f) return 2; // "OPML" little-endian
  if (load<u32>(ptr + 4) != 1) return 3;
  if (load<u32>(ptr + 8) != <u32>N) return 4;
  mean = <usize>(ptr + 12);
  scale = mean + (<usize>N << 2);
  w = scale + (<usize>N << 2);
  bias = load<f32>(w + (<usize>N << 2));
  ready = true;
  return 0;
}

export function score(ptr: i32, len: i32): f32 {
  if (!ready || len != N) return -1;
  let z: f64 = <f64>bias;
  for (let i: i32 = 0; i < N; i++) {
    const o = <usize>i << 2;
    const s = load<f32>(scale + o);
    const x = (load<f32>(<usize>ptr + o) - load<f32>(mean + o)) / (s > 0 ? s : 1);
    z += <f64>(load<f32>(w + o) * x);
  }
  return <f32>(1.0 / (1.0 + Math.exp(-z)));
}
