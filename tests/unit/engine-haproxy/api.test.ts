/** Parsing HAProxy 2.6's runtime API answers, as it printed them in a real session. */
import { describe, expect, it } from "vitest";
import {
  parseMap,
  parseServersState,
  parseStatCsv,
} from "../../../gateway-runtime/engine/haproxy/api.js";
import { parseShowProc } from "../../../gateway-runtime/engine/haproxy/process.js";

describe("runtime API answers", () => {
  it("reads servers' states: maintenance (forced or from the config) and drain are not ready", () => {
    const text = [
      "1",
      "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port",
      "7 app_1 1 i_02 127.88.0.3 2 0 1 1 622 1 0 0 0 0 0 0 - 0 - 0 0 - - 0",
      "7 app_1 2 i_03 127.88.0.3 0 5 1 1 2 1 0 0 8 0 0 0 - 8080 - 0 0 - - 0",
      "5 app_0 1 i_1 127.88.0.2 2 4 1 1 2 1 0 0 8 0 0 0 - 0 - 0 0 - - 0",
      "5 app_0 2 i_4 127.88.0.4 2 8 1 1 2 1 0 0 8 0 0 0 - 0 - 0 0 - - 0",
      "",
    ].join("\n");
    expect(parseServersState(text).map((s) => [s.backend, s.name, s.address, s.ready])).toEqual([
      ["app_1", "i_02", "127.88.0.3", true],
      ["app_1", "i_03", "127.88.0.3", false],
      // Declared `disabled`, then `state ready`: only the config flag is left.
      ["app_0", "i_1", "127.88.0.2", true],
      ["app_0", "i_4", "127.88.0.4", false],
    ]);
  });

  it("reads show stat and show map", () => {
    const stat = parseStatCsv("# pxname,svname,scur\nfe_sni,FRONTEND,3\napp_0,i_01,2\n\n");
    expect(stat).toEqual([
      { pxname: "fe_sni", svname: "FRONTEND", scur: "3" },
      { pxname: "app_0", svname: "i_01", scur: "2" },
    ]);
    expect(parseMap("0x55a5e12a44e0 a1a1 app_0\n0x7f9dcc049950 b2b2 app_1\n\n")).toEqual(
      new Map([
        ["a1a1", "app_0"],
        ["b2b2", "app_1"],
      ]),
    );
  });

  it("reads the master's show proc: current workers, not the old ones", () => {
    const text = [
      "#<PID>          <type>          <reloads>       <uptime>        <version>",
      "22365           master          3 [failed: 1]   0d00h11m17s     2.6.12-1+deb12u4",
      "# workers",
      "23331           worker          0               0d00h10m29s     2.6.12-1+deb12u4",
      "# old workers",
      "23001           worker          1               0d00h12m29s     2.6.12-1+deb12u4",
      "# programs",
      "",
    ].join("\n");
    expect(parseShowProc(text)).toEqual({ master: 22365, workers: [23331], failedReloads: 1 });
  });
});
