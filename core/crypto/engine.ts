/**
 * One place that wires the X.509 and CMS libraries to the runtime's WebCrypto.
 * `@peculiar/x509` needs `reflect-metadata` loaded before it is evaluated, so
 * every crypto module imports the libraries from here rather than directly.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import * as pkijs from "pkijs";

x509.cryptoProvider.set(crypto);
// The (crypto, subtle) overload makes pkijs wrap WebCrypto in its own CryptoEngine.
pkijs.setEngine("bun", crypto, crypto.subtle);

export { pkijs, x509 };
