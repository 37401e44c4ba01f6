//! The OpenAPI document served at `/v1/openapi.json`, built from the route table so that it
//! lists exactly the routes the router serves (a test in `routes` checks the table).

use serde_json::{Map, Value, json};

use super::ROUTES;

/// The OpenAPI 3.1 document of the native API.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for route in &ROUTES {
        let template = &route.path;
        let mut operations = Map::new();
        for method in route.methods {
            let summary = "";
            let mut parameters = Vec::new();
            for name in ["id", "step"] {
                if template.contains(&format!("{{{name}}}")) {
                    parameters.push(json!({
                        "name": name, "in": "path", "required": true,
                        "schema": {"type": "string"}
                    }));
                }
            }
            let mut operation = json!({
                "summary": summary,
                "parameters": parameters,
                "responses": {
                    "default": {
                        "description": "the result, or an error document",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                    }
                }
            });
            if *template != "/healthz" && *template != "/v1/openapi.json" {
                operation["security"] = json!([{"bearer": []}]);
            }
            operations.insert(method.as_str().to_lowercase(), operation);
        }
        paths.insert((*template).to_owned(), Value::Object(operations));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "jobstore native API",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["type", "message"],
                        "properties": {"type": {"type": "string"}, "message": {"type": "string"}}
                    }}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_and_method() {
        let doc = document();
        let mut count = 0;
        for route in &ROUTES {
            let template = route.path;
            for method in route.methods {
                assert!(
                    doc["paths"][template][method.as_str().to_lowercase()].is_object(),
                    "{method} {template}"
                );
                count += 1;
            }
        }
        let listed: usize = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .values()
                    .filter_map(Value::as_object)
                    .map(Map::len)
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(listed, count);
    }
}
