// Run a Python script under real Pyodide (the Cloudflare Python Workers runtime) in Node.
//
//   node run.mjs <python-script> [--src DIR]...
//
// Installs every *.whl from the wheel cache (TRIGGER_DO_PYODIDE_WHEELS, default
// ./.wheels next to this file; fill it with `python wheels.py`), copies each
// --src package directory to /home/pyodide/src/<basename> (on sys.path), then
// runs the script as __main__ with top-level await allowed.
// Exit code: 0 on success, 1 (traceback on stderr) on an uncaught exception,
// or the code given to sys.exit().
import { loadPyodide } from "pyodide";
import * as workerd from "./workerd.mjs";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRC_ROOT = "/home/pyodide/src";

function parseArgs(argv) {
  const srcDirs = [];
  let script = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--src") {
      if (i + 1 >= argv.length) throw new Error("--src needs a directory");
      srcDirs.push(path.resolve(argv[++i]));
    } else if (a.startsWith("--src=")) {
      srcDirs.push(path.resolve(a.slice("--src=".length)));
    } else if (script === null) {
      script = path.resolve(a);
    } else {
      throw new Error(`unexpected argument: ${a}`);
    }
  }
  if (script === null) throw new Error("usage: node run.mjs <python-script> [--src DIR]...");
  if (!fs.existsSync(script)) throw new Error(`no such script: ${script}`);
  for (const dir of srcDirs) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--src is not a directory: ${dir}`);
  }
  return { script, srcDirs };
}

const SKIP = new Set(["__pycache__", "node_modules", ".wheels"]);

// Recursively copy a host directory into the Pyodide (Emscripten) FS.
function copyTree(FS, hostDir, fsDir) {
  FS.mkdirTree(fsDir);
  for (const ent of fs.readdirSync(hostDir, { withFileTypes: true })) {
    if (SKIP.has(ent.name) || ent.name.endsWith(".pyc")) continue;
    const hostPath = path.join(hostDir, ent.name);
    const fsPath = `${fsDir}/${ent.name}`;
    if (ent.isDirectory()) copyTree(FS, hostPath, fsPath);
    else if (ent.isFile()) FS.writeFile(fsPath, fs.readFileSync(hostPath));
  }
}

const DRIVER = `
import sys, traceback
from pyodide.code import eval_code_async

async def _run_main(path):
    g = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        await eval_code_async(source, g, filename=path)
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next  # drop Pyodide's own eval frames
        if isinstance(e, SyntaxError):
            tb = None  # like CPython: just the offending line
        elif tb is None:
            tb = e.__traceback__
        traceback.print_exception(type(e), e, tb)
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0
_run_main
`;

async function main() {
  const { script, srcDirs } = parseArgs(process.argv.slice(2));
  const wheelDir = path.resolve(process.env.TRIGGER_DO_PYODIDE_WHEELS || path.join(HERE, ".wheels"));

  const pyodide = await loadPyodide();
  const write = (stream) => ({
    write: (buf) => {
      stream.write(buf);
      return buf.length;
    },
  });
  pyodide.setStdout(write(process.stdout));
  pyodide.setStderr(write(process.stderr));

  // What the Workers runtime registers before a Python Worker's code runs
  // (python-entrypoint-helper.ts `setupPatches`), and its runtime globals; the binding
  // stand-ins themselves are importable as `_workerd` (see workerd.mjs).
  workerd.install();
  pyodide.registerJsModule("_pyodide_entrypoint_helper", workerd.entrypointHelper);
  pyodide.registerJsModule("_cloudflare_compat_flags", workerd.compatibilityFlags);
  pyodide.registerJsModule("_workerd", workerd);

  // Wheels -> site-packages.
  const sitePackages = pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
  const wheels = fs.existsSync(wheelDir)
    ? fs.readdirSync(wheelDir).filter((f) => f.endsWith(".whl")).sort()
    : [];
  if (wheels.length === 0) {
    process.stderr.write(`run.mjs: warning: no wheels in ${wheelDir} (run wheels.py)\n`);
  }
  for (const whl of wheels) {
    const bytes = fs.readFileSync(path.join(wheelDir, whl));
    pyodide.unpackArchive(new Uint8Array(bytes), "wheel", { extractDir: sitePackages });
  }

  // Package sources -> /home/pyodide/src/<name>, plus the script itself at its own path.
  for (const dir of srcDirs) {
    copyTree(pyodide.FS, dir, `${SRC_ROOT}/${path.basename(dir)}`);
  }
  pyodide.FS.mkdirTree(SRC_ROOT);
  pyodide.FS.mkdirTree(path.posix.dirname(script));
  pyodide.FS.writeFile(script, fs.readFileSync(script));
  pyodide.runPython(`
import sys, importlib
sys.path[:0] = [${JSON.stringify(path.posix.dirname(script))}, ${JSON.stringify(SRC_ROOT)}]
sys.argv = [${JSON.stringify(script)}]
importlib.invalidate_caches()
`);

  const runMain = pyodide.runPython(DRIVER);
  const code = await runMain(script);
  runMain.destroy();
  return code;
}

let exitCode;
try {
  exitCode = await main();
} catch (err) {
  process.stderr.write(`run.mjs: ${err && err.stack ? err.stack : err}\n`);
  exitCode = 1;
}
// Let pending stdout/stderr writes drain, then exit (Pyodide may keep handles alive).
process.stdout.write("", () => process.stderr.write("", () => process.exit(exitCode)));
