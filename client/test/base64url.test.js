// base64url without padding, as WebAuthn's JSON forms and the service use it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fromBase64url, toBase64url } from "../index.js";

const view = (buffer) => [...new Uint8Array(buffer)];

test("known vectors, no padding, URL alphabet", () => {
  const cases = [["", ""], ["f", "Zg"], ["fo", "Zm8"], ["foo", "Zm9v"], ["foob", "Zm9vYg"], ["fooba", "Zm9vYmE"]];
  for (const [text, encoded] of cases) {
    assert.equal(toBase64url(new TextEncoder().encode(text)), encoded, text);
    assert.equal(new TextDecoder().decode(fromBase64url(encoded)), text, encoded);
  }
  // "+/8=" in standard base64.
  assert.equal(toBase64url(new Uint8Array([0xfb, 0xff])), "-_8");
  assert.deepEqual(view(fromBase64url("-_8")), [0xfb, 0xff]);
});

test("every byte value and every length round-trips, and matches node's own encoder", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  for (let length = 0; length <= all.length; length += 1) {
    const slice = all.slice(256 - length);
    const encoded = toBase64url(slice.buffer);
    assert.equal(encoded, Buffer.from(slice).toString("base64url"), `length ${length}`);
    assert.doesNotMatch(encoded, /[=+/]/);
    assert.deepEqual(view(fromBase64url(encoded)), [...slice]);
  }
});

test("decoding accepts padding", () => {
  assert.deepEqual(view(fromBase64url("Zm8=")), view(fromBase64url("Zm8")));
  assert.deepEqual(view(fromBase64url("Zg==")), [0x66]);
});

test("a view encodes its own bytes only, whatever its type", () => {
  const buffer = Uint8Array.from([1, 2, 3, 4, 5, 6]).buffer;
  assert.equal(toBase64url(new Uint8Array(buffer, 2, 3)), Buffer.from([3, 4, 5]).toString("base64url"));
  assert.equal(toBase64url(new DataView(buffer, 1, 2)), Buffer.from([2, 3]).toString("base64url"));
  assert.equal(toBase64url(new Uint16Array(buffer, 2, 2)), Buffer.from([3, 4, 5, 6]).toString("base64url"));
});

test("decoding answers a fresh ArrayBuffer", () => {
  const decoded = fromBase64url("AAEC");
  assert.ok(decoded instanceof ArrayBuffer);
  assert.equal(decoded.byteLength, 3);
});
