// The package as a frontend team installs it: what package.json promises
// exists, index.d.ts declares every export, and the error id union is the
// service's whole table (the repository's docs/src/error-ids.md) plus the
// client's own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as client from "../index.js";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const read = (path) => readFileSync(here(path), "utf8");
const pkg = JSON.parse(read("../package.json"));
const types = read("../index.d.ts");
const source = read("../index.js");

/** The string literals of `export type NAME = | "a" | "b";` in index.d.ts. */
function union(name) {
  const match = types.match(new RegExp(`export type ${name} =([^;]*);`));
  assert.ok(match, `index.d.ts declares ${name}`);
  return [...match[1].matchAll(/"([a-z0-9_]+)"/g)].map((m) => m[1]);
}

test("package.json: an ES module with types, no dependencies, and every listed file present", () => {
  assert.equal(pkg.name, "@kratos-passkeys/client");
  assert.equal(pkg.type, "module");
  assert.notEqual(pkg.private, true);
  assert.equal(pkg.types, "./index.d.ts");
  assert.deepEqual(pkg.exports["."], { types: "./index.d.ts", default: "./index.js" });
  assert.equal(pkg.dependencies, undefined, "no dependencies");
  assert.equal(pkg.devDependencies, undefined, "no build step or test dependencies");
  for (const file of pkg.files) assert.ok(existsSync(here(`../${file}`)), file);
});

test("index.d.ts declares every export of index.js, and nothing it does not export", () => {
  const declared = new Set(
    [...types.matchAll(/^export (?:declare )?(?:function|class|const) ([A-Za-z0-9_]+)/gm)].map((m) => m[1]),
  );
  assert.deepEqual([...declared].sort(), Object.keys(client).sort());
});

test("the ServiceErrorId union is the error id reference's table", () => {
  const section = read("../../docs/src/error-ids.md");
  assert.match(section, /^# Error ids\n/, "docs/src/error-ids.md is the error id reference");
  const ids = section.split("\n")
    .filter((line) => /^\| `/.test(line))
    .flatMap((line) => [...line.split("|")[1].matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]));
  assert.ok(ids.length > 30, `read ${ids.length} ids`);
  assert.deepEqual([...union("ServiceErrorId")].sort(), [...new Set(ids)].sort());
});

test("ClientErrorId is exactly the ids index.js throws itself, none of them the service's", () => {
  const thrown = new Set([...source.matchAll(/new PasskeyError\(\s*"([a-z_]+)"/g)].map((m) => m[1]));
  thrown.add("unexpected_response"); // the fallback for an answer without an id
  assert.deepEqual([...union("ClientErrorId")].sort(), [...thrown].sort());
  const service = new Set(union("ServiceErrorId"));
  for (const id of thrown) assert.equal(service.has(id), false, id);
  assert.match(types, /export type PasskeyErrorId = ServiceErrorId \| ClientErrorId;/);
});
