// Bad input: score() never returns (rule M10: the fuel bound must stop it).
export function alloc(bytes: i32): i32 { return <i32>heap.alloc(<usize>bytes); }
export function features_len(): i32 { return 37; }
export function init(ptr: i32, len: i32): i32 { return 0; }
export function score(ptr: i32, len: i32): f32 {
  let x: f32 = 0;
  while (load<f32>(ptr) < 1e30) { x += 1; store<f32>(ptr + 4, x); }
  return 0.5;
}
