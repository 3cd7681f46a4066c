// Bad input that passes validation: scores small objects (log_size < 0.4, about 7 KB) and never
// returns on larger ones — the runtime fault path (fuel → fault → switched off → rolled back).
export function alloc(bytes: i32): i32 { return <i32>heap.alloc(<usize>bytes); }
export function features_len(): i32 { return 37; }
export function init(ptr: i32, len: i32): i32 { return 0; }
export function score(ptr: i32, len: i32): f32 {
  let x: f32 = load<f32>(ptr);
  while (x >= 0.4) { x += 1; store<f32>(ptr + 4, x); }
  return 0.1;
}
