// Loaded into every test process before anything else (.taprc `node-arg: --require`; --require runs
// before every --import). tap starts each test file with @tapjs/processinfo's `--import`, which registers
// a module loader (module.register) on a hooks thread of its own: every module the test imports is then
// resolved and loaded through that thread, measured 0.5 s more CPU for a test file that does nothing
// (1.2 s instead of 0.65 s), on each of the suite's ~180 files. The loader only records which files
// a process loaded, for coverage and for `tap --changed`; with coverage off (.taprc: disable-coverage)
// nothing reads that record, so the registration is dropped and modules load on the main thread as
// in production. Coverage runs (`npm run coverage`) keep it: the record is what they report.
//
// Everything else processinfo does stays (its record of the process, its variables for children; the
// children's loader is taken out by test/helpers/preload.ts), and another module's loader registers
// as usual.
import Module from 'node:module';

if (process.env._TAPJS_PROCESSINFO_COVERAGE_ !== '1' && typeof Module.register === 'function') {
  const register = Module.register;
  Module.register = function registerUnlessProcessInfo(
    this: unknown,
    ...args: Parameters<typeof register>
  ): ReturnType<typeof register> {
    const specifier = String(args[0]);
    if (/[\\/]@tapjs[\\/]processinfo[\\/]/.test(specifier)) return undefined;
    return register.apply(this, args);
  } as typeof register;
}
