import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

// The broker's own certificate: read from the `tlsCert`/`tlsKey` files at start and on every
// reload, and checked before use, so that a bad pair never reaches the server (a reload that
// fails keeps the pair in service).

/** Where the certificate chain and its private key are, as the options name them. */
export interface TlsFiles {
  tlsCert: string;
  tlsKey: string;
}

/** A certificate chain and its private key, read and checked. */
export interface TlsPair {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint of the leaf certificate (`AB:CD:…`), what an operator compares. */
  fingerprint: string;
  /** When the leaf certificate expires, as OpenSSL prints it. */
  validTo: string;
}

/**
 * Reads both files and checks that the first holds a PEM certificate, the second a private key
 * (not passphrase-protected) that matches it. Throws an `Error` whose message starts with the
 * option at fault: `tlsCert: cannot read /etc/crier/cert.pem: ENOENT…`.
 */
export async function readTlsPair(files: TlsFiles): Promise<TlsPair> {
  const [cert, key] = await Promise.all([read('tlsCert', files.tlsCert), read('tlsKey', files.tlsKey)]);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`tlsCert: ${files.tlsCert} holds no PEM certificate (${messageOf(err)})`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`tlsKey: ${files.tlsKey} holds no usable private key, or one protected by a passphrase (${messageOf(err)})`);
  }
  if (privateKey.asymmetricKeyType !== leaf.publicKey.asymmetricKeyType || !leaf.checkPrivateKey(privateKey)) {
    throw new Error(`tlsKey: ${files.tlsKey} is not the private key of the certificate in ${files.tlsCert}`);
  }
  try {
    // What the server will do with them: catches what the checks above cannot (a broken chain).
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`tlsCert: ${files.tlsCert} and ${files.tlsKey} are refused by TLS (${messageOf(err)})`);
  }
  return { cert, key, fingerprint: leaf.fingerprint256, validTo: leaf.validTo };
}

async function read(option: keyof TlsFiles, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new Error(`${option}: cannot read ${path}: ${messageOf(err)}`);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
