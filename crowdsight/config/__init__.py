"""Configuration read at the boundary: one tree of pydantic models, each setting declared once.

`serve.ServeConfig` is the root of the serve config file (`serve.load_serve_config` reads it
and applies the environment); below it `server.ServerSettings` (HTTP, database, auth,
`sources.SourcePolicy`, `outputs` MQTT/webhooks/delivery), `runner.RunnerSettings` (workers)
with `pipeline.PipelineSettings` (stages, typed detector, `runtime.RuntimeConfig` backend),
and the cameras, whose cadences are the `camera` field types. Scenes (zones, lines, rules)
are `scene.SceneConfig`. CLI options (`crowdsight.cli.options`), API schemas, database CHECK
constraints and the dashboard form read these declarations instead of repeating them.
"""

from crowdsight.config.scene import SceneConfig, load_scene, parse_scene

__all__ = ["SceneConfig", "load_scene", "parse_scene"]
