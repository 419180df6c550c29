import { strict as assert } from 'node:assert';
import { formatBytes, formatDuration, formatMaintenance, formatOptional } from './format';

describe('display formats', () => {
  it('shows "not configured" for replication and backup while null', () => {
    assert.equal(formatOptional(null), 'not configured');
    assert.equal(formatOptional(undefined), 'not configured');
  });

  it('shows the flat fields of a configured replication object', () => {
    assert.equal(formatOptional({ role: 'primary', lagSeconds: 0, replicas: [] }), 'role: primary, lagSeconds: 0');
  });

  it('formats uptime coarsely', () => {
    assert.equal(formatDuration(12.3), '12s');
    assert.equal(formatDuration(3725), '1h 2m');
    assert.equal(formatDuration(90061), '1d 1h');
    assert.equal(formatDuration(null), '—');
  });

  it('formats memory in binary units', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(4 * 1024 ** 3), '4.0 GiB');
  });

  it('counts and names the servers in maintenance for the banner', () => {
    assert.equal(formatMaintenance([]), '');
    assert.equal(formatMaintenance(['pi-web2']), '1 server in maintenance: pi-web2');
    assert.equal(formatMaintenance(['pi-web2', 'pi-web3']), '2 servers in maintenance: pi-web2, pi-web3');
  });
});
