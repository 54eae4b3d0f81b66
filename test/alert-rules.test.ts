import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { CHART, RELEASE } from './helpers/kube-site.js';
import { run, runOk } from './helpers/run-cli.js';
import { REPO_ROOT } from './helpers/sidecar-process.js';

// The chart's PrometheusRule, proved with Prometheus's own promtool: the rules parse,
// and against sample series each alert fires exactly where it should and nowhere else.

let dir: string | undefined;
afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function tool(name: string): Promise<string> {
  return join((await runOk('bash', [join(REPO_ROOT, 'hack', 'control-plane.sh'), 'bin'])).trim(), name);
}

describe("the chart's alert rules", () => {
  it('parse (promtool check rules) and fire on RPO above target, out-of-sync not shrinking, stuck Retrying', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-alerts-'));
    const rendered = await runOk(await tool('helm'), ['template', RELEASE, CHART, '--set', 'metrics.prometheusRule.enabled=true', '--set', 'metrics.prometheusRule.rpoTargetSeconds=30']);
    const rule = parseAllDocuments(rendered)
      .map((d) => d.toJS() as { kind?: string; spec?: { groups: unknown[] } } | null)
      .find((d) => d?.kind === 'PrometheusRule');
    expect(rule?.spec?.groups).toBeDefined();
    await writeFile(join(dir, 'rules.yaml'), stringify({ groups: rule!.spec!.groups }));
    const promtool = await tool('promtool');
    expect(await runOk(promtool, ['check', 'rules', join(dir, 'rules.yaml')])).toMatch(/SUCCESS: 3 rules found/);

    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: 'blockmirror_rpo_seconds{pair="behind"}', values: '40x40' },
            { series: 'blockmirror_rpo_seconds{pair="fine"}', values: '5x40' },
            // Growing for 40 minutes: never shrinks, never zero.
            { series: 'blockmirror_out_of_sync_bytes{pair="stuck"}', values: '1000+100x40' },
            // Shrinking steadily: catching up, no alert.
            { series: 'blockmirror_out_of_sync_bytes{pair="draining"}', values: '9000-100x40' },
            // Mostly zero with bursts: in sync between them, no alert.
            { series: 'blockmirror_out_of_sync_bytes{pair="bursty"}', values: '0 500 0 0 300 0 0 0 200 0 0 0 0 100 0 0 0 0 0 400 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0' },
            { series: 'blockmirror_pair_state{pair="behind",state="Retrying"}', values: '1x40' },
            { series: 'blockmirror_pair_state{pair="fine",state="Retrying"}', values: '0x40' },
          ],
          alert_rule_test: [
            {
              eval_time: '6m',
              alertname: 'BlockmirrorRPOAboveTarget',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', pair: 'behind' },
                  exp_annotations: { summary: 'Pair behind: RPO above 30s', description: "The secondary's last consistency point is 40s behind the primary." },
                },
              ],
            },
            { eval_time: '4m', alertname: 'BlockmirrorRPOAboveTarget', exp_alerts: [] },
            {
              eval_time: '35m',
              alertname: 'BlockmirrorOutOfSyncNotShrinking',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', pair: 'stuck' },
                  exp_annotations: {
                    summary: 'Pair stuck: out-of-sync bytes have not shrunk for 15 minutes',
                    description: 'The secondary is not catching up: out-of-sync bytes have not gone down, nor reached zero, in 15 minutes.',
                  },
                },
              ],
            },
            {
              eval_time: '11m',
              alertname: 'BlockmirrorPairStuckRetrying',
              exp_alerts: [
                {
                  exp_labels: { severity: 'critical', pair: 'behind' },
                  exp_annotations: {
                    summary: 'Pair behind has been Retrying for 10 minutes',
                    description: 'The primary cannot reach its secondary; writes are recorded as out of sync and the RPO grows.',
                  },
                },
              ],
            },
            { eval_time: '9m', alertname: 'BlockmirrorPairStuckRetrying', exp_alerts: [] },
          ],
        },
      ],
    };
    await writeFile(join(dir, 'rules.test.yaml'), stringify(tests));
    const r = await run(promtool, ['test', 'rules', join(dir, 'rules.test.yaml')], { cwd: dir });
    expect(r.stdout + r.stderr).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  }, 60_000);
});
