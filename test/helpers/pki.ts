import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * A throw-away PKI made with openssl in `dir`: a CA (ca.crt, ca.key) that issues
 * certificates (`<name>.crt`, `<name>.key`) with the given subject and extensions.
 */
export function testPki(dir: string): {
  dir: string;
  issue(name: string, subject: string, ext: string): void;
} {
  mkdirSync(dir, { recursive: true });
  const o = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  o(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"].concat([
      "-days",
      "2",
      "-subj",
      "/CN=strata test CA",
    ]),
  );
  return {
    dir,
    issue(name, subject, ext) {
      o([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        subject,
      ]);
      writeFileSync(path.join(dir, `${name}.ext`), ext);
      o(
        ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"].concat(
          ["-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`],
        ),
      );
    },
  };
}
